"""Checkpoint → a Hugging Face folder (config.json + model.safetensors [+ vocabulary]).

``transformers.BertForPreTraining.from_pretrained(folder)`` loads it and computes the same
outputs as ``trainer.model.BertForPreTraining`` (tests/trainer/test_export.py checks this).
This module does not import transformers: the names below are its documented parameter names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import save

from corpusgen.intermediate import WORK_DIR
from corpusgen.shards import LOCK_NAME, MANIFEST_NAME, atomic_write_bytes, remove_stale_temps, sha256_file
from corpusgen.tokenizer import ROLES
from trainer.model import BertConfig

TOKENIZER_FILES = frozenset({"vocab.txt", "tokenizer.json", "tokenizer_config.json"})  # what an export may hold


class Exported(NamedTuple):
    folder: Path
    tokenizer: Path | None  # the tokenizer file put beside the weights; None: the build is gone, none given
    pair_head_trained: bool  # False: an MLM-only build; the pooler and NSP head hold their initial weights


def hf_config(mcfg: BertConfig) -> dict[str, Any]:
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": mcfg.vocab_size,
        "hidden_size": mcfg.hidden_size,
        "num_hidden_layers": mcfg.num_hidden_layers,
        "num_attention_heads": mcfg.num_attention_heads,
        "intermediate_size": mcfg.intermediate_size,
        "hidden_act": "gelu",  # exact (erf) GELU, as F.gelu's default
        "hidden_dropout_prob": mcfg.hidden_dropout_prob,
        "attention_probs_dropout_prob": mcfg.attention_probs_dropout_prob,
        "max_position_embeddings": mcfg.max_position_embeddings,
        "type_vocab_size": mcfg.type_vocab_size,
        "initializer_range": mcfg.initializer_range,
        "layer_norm_eps": mcfg.layer_norm_eps,
        "pad_token_id": mcfg.pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }


def hf_state_dict(state: dict[str, torch.Tensor], mcfg: BertConfig) -> dict[str, torch.Tensor]:
    """Our parameter names → Hugging Face BERT names (the fused qkv split into query/key/value)."""
    H = mcfg.hidden_size
    hf: dict[str, torch.Tensor] = {}
    emb = "bert.embeddings."
    hf[emb + "word_embeddings.weight"] = state["emb.word.weight"]
    hf[emb + "position_embeddings.weight"] = state["emb.position.weight"]
    hf[emb + "token_type_embeddings.weight"] = state["emb.token_type.weight"]
    hf[emb + "LayerNorm.weight"] = state["emb.ln.weight"]
    hf[emb + "LayerNorm.bias"] = state["emb.ln.bias"]
    for i in range(mcfg.num_hidden_layers):
        ours, theirs = f"layers.{i}.", f"bert.encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = state[ours + f"qkv.{kind}"].split(H, dim=0)
            hf[theirs + f"attention.self.query.{kind}"] = q
            hf[theirs + f"attention.self.key.{kind}"] = k
            hf[theirs + f"attention.self.value.{kind}"] = v
            hf[theirs + f"attention.output.dense.{kind}"] = state[ours + f"proj.{kind}"]
            hf[theirs + f"attention.output.LayerNorm.{kind}"] = state[ours + f"ln1.{kind}"]
            hf[theirs + f"intermediate.dense.{kind}"] = state[ours + f"fc1.{kind}"]
            hf[theirs + f"output.dense.{kind}"] = state[ours + f"fc2.{kind}"]
            hf[theirs + f"output.LayerNorm.{kind}"] = state[ours + f"ln2.{kind}"]
    for kind in ("weight", "bias"):
        hf[f"bert.pooler.dense.{kind}"] = state[f"pooler.{kind}"]
        hf[f"cls.predictions.transform.dense.{kind}"] = state[f"mlm_dense.{kind}"]
        hf[f"cls.predictions.transform.LayerNorm.{kind}"] = state[f"mlm_ln.{kind}"]
        hf[f"cls.seq_relationship.{kind}"] = state[f"nsp.{kind}"]
    # the decoder weight is tied to the word embeddings and left out, as save_pretrained does;
    # older transformers read decoder.bias, newer ones cls.predictions.bias: write both
    hf["cls.predictions.bias"] = state["mlm_bias"]
    hf["cls.predictions.decoder.bias"] = state["mlm_bias"].clone()
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in hf.items()}


def export(
    checkpoint: str | Path, out_dir: str | Path, *, overwrite: bool = False, tokenizer: str | Path | None = None
) -> Exported:
    """Write the Hugging Face folder for ``checkpoint`` (a ckpt-*.pt or a run directory: its latest).

    The checkpoint is loaded without executing anything in it (``load_checkpoint``); every file is
    written durably under a temporary name and renamed into place. ``out_dir`` must be new or
    empty unless ``overwrite`` (then the export's files in it are replaced, an earlier export's tokenizer
    files this one does not write are removed, nothing else is touched).
    The tokenizer put beside the weights is ``tokenizer`` or the training build's, and must be the
    vocabulary the model was trained with (the checkpoint's sha256). Returns the folder, the
    tokenizer file used (None: the build is gone and none was given; the weights are written alone)
    and whether the pooler and NSP head were trained (not on an MLM-only build).
    """
    from trainer.train import checkpoints, load_checkpoint

    out = Path(out_dir)
    if out.is_dir() and holds_build_or_run(out):
        raise FileExistsError(f"{out}: a build or training run is there, not an export; export into another folder")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise FileExistsError(
            f"{out}: folder is not empty; export into a new folder, or add --overwrite to replace an earlier export"
        )

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        found = checkpoints(checkpoint)
        if not found:
            raise FileNotFoundError(f"{checkpoint}: no ckpt-*.pt here; train first or name a checkpoint file")
        checkpoint = found[-1]
    ckpt = load_checkpoint(checkpoint)
    mcfg = BertConfig(**ckpt["model_config"])
    vocab = trained_vocabulary(ckpt, tokenizer)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # left by an export that was killed
    write_json(out / "config.json", hf_config(mcfg))
    atomic_write_bytes(out / "model.safetensors", save(hf_state_dict(ckpt["model"], mcfg), metadata={"format": "pt"}))
    written = (
        copy_tokenizer(vocab, ckpt.get("tokenizer") or {}, out, mcfg.max_position_embeddings)
        if vocab is not None
        else []
    )
    for name in TOKENIZER_FILES.difference(written):  # an earlier export's: AutoTokenizer would load it
        (out / name).unlink(missing_ok=True)
    next_sentence = (ckpt.get("build_config") or {}).get("next_sentence", "nsp")
    return Exported(out, vocab, next_sentence in ("nsp", "sop"))


def holds_build_or_run(folder: Path) -> bool:
    """Whether ``folder`` holds a build (finished, or unfinished: its shards, intermediate files or lock, no
    manifest yet) or a training run (a checkpoint, or only its logs before the first one): an export there
    would replace the build's vocab.txt, or mix a model's files into a run."""
    from trainer.train import RUN_LOGS, checkpoints

    build = (MANIFEST_NAME, "shards", WORK_DIR, LOCK_NAME)
    return any((folder / name).exists() for name in (*build, *RUN_LOGS)) or bool(checkpoints(folder))


def trained_vocabulary(ckpt: dict[str, Any], given: str | Path | None = None) -> Path | None:
    """The vocab.txt or tokenizer.json to export with the model: ``given``, else the training build's.

    Either must be the file the model was trained with (sha256 as the checkpoint records it): a build
    redone in the same folder with another vocabulary would otherwise ship ids the model never saw.
    None when no file is given and the build is gone.
    """
    if given is not None:
        path = Path(given)
        if path.suffix not in (".txt", ".json"):
            raise ValueError(f"--tokenizer {path}: give the build's vocab.txt or tokenizer.json")
        if not path.is_file():
            raise FileNotFoundError(f"--tokenizer {path}: no such file")
    else:
        data_dir = ckpt.get("data_dir")
        found = [Path(data_dir) / n for n in ("vocab.txt", "tokenizer.json")] if data_dir else []
        found = [f for f in found if f.is_file()]
        if not found:
            return None
        path = found[0]
    expected = ckpt.get("vocab_sha256")
    digest = sha256_file(path)
    if expected and digest != expected:
        raise ValueError(
            f"{path}: not the vocabulary this model was trained with (sha256 {digest[:12]}…, the checkpoint's "
            f"{str(expected)[:12]}…; the build was redone since?); pass --tokenizer with the original file"
        )
    return path


def copy_tokenizer(vocab: Path, tok: dict[str, Any], out: Path, max_length: int) -> list[str]:
    """Put the model's vocabulary (``vocab``, checked by ``trained_vocabulary``) beside the weights so
    AutoTokenizer works too; ``tok`` is the build manifest's tokenizer entry.

    A vocab.txt gets BERT's tokenizer class with the build's ``do_lower_case``. A tokenizer.json is
    used through the generic fast class, which runs its own normalizer and pre-tokenizer (BERT's
    class would rebuild them from its defaults: lower-casing a cased vocabulary), with the
    post-processor set to the layout the model was trained on, ``CLS A SEP`` and ``CLS A SEP B SEP``
    with B as segment 1: a RoBERTa-style processor adds ``</s></s>`` between A and B and no segment
    ids, and a tokenizer.json without one adds no special tokens at all. The tokenizer_config.json
    names the build's special tokens (the manifest's tokenizer entry); ``model_max_length`` is the
    model's positions. Returns the names written (of ``TOKENIZER_FILES``).
    """
    if vocab.suffix == ".txt":
        atomic_write_bytes(out / "vocab.txt", vocab.read_bytes())
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": bool(tok.get("do_lower_case", True)),
            "model_max_length": max_length,
        }
        write_json(out / "tokenizer_config.json", config)
        return ["vocab.txt", "tokenizer_config.json"]
    else:
        atomic_write_bytes(
            out / "tokenizer.json", trained_layout(vocab.read_text(encoding="utf-8"), tok).encode("utf-8")
        )
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length}
        config |= {f"{role}_token": tok[f"{role}_token"] for role in ROLES if f"{role}_token" in tok}
        if tok.get("type", "wordpiece") != "wordpiece" and "cls_token" in tok:
            # RoBERTa's convention: <s> and </s> also begin and end a text
            config |= {"bos_token": tok["cls_token"], "eos_token": tok["sep_token"]}
        # the generic class leaves segment ids out unless told; the model was trained with them
        config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
        write_json(out / "tokenizer_config.json", config)
        return ["tokenizer.json", "tokenizer_config.json"]


def trained_layout(tokenizer_json: str, tok: dict[str, Any]) -> str:
    """``tokenizer_json`` with its post-processor replaced by the build's layout (ids from ``tok``,
    the manifest's tokenizer entry); byte-level tokenizers keep their offset trimming."""
    from tokenizers import Tokenizer, processors

    if not {"cls_token", "sep_token", "cls_id", "sep_id"} <= tok.keys():  # not from a build's manifest
        return tokenizer_json
    tk = Tokenizer.from_str(tokenizer_json)
    cls, sep = tok["cls_token"], tok["sep_token"]
    template = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, int(tok["cls_id"])), (sep, int(tok["sep_id"]))],
    )
    byte_level = '"ByteLevel"' in json.dumps(json.loads(tokenizer_json).get("pre_tokenizer"))
    tk.post_processor = (
        processors.Sequence([processors.ByteLevel(trim_offsets=True), template]) if byte_level else template
    )
    return tk.to_str()


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))
