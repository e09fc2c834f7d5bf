"""Builds with a BPE and a Unigram tokenizer: they validate, lay out ``<s> A </s> B </s>`` with the
tokenizer's own ids, mask whole words of the tokenizer, train a tiny model, and export to a
Hugging Face folder that transformers loads with the right special tokens."""

import json

import numpy as np
import pytest
import zstandard

from corpusgen.config import BuildConfig
from corpusgen.shards import read_shard
from corpusgen.tokenizer import SubwordTokenizer, VocabFile
from corpusgen.validate import validate_build
from pipelines.build import run_build
from tests.conftest import BPE_TOKENIZER, DATA, UNIGRAM_TOKENIZER
from trainer.train import TrainConfig, train

TOKENIZERS = {"bpe": BPE_TOKENIZER, "unigram": UNIGRAM_TOKENIZER}


@pytest.fixture(scope="module")
def articles(tmp_path_factory):
    """The first 300 articles of the bundled Wikipedia sample."""
    with zstandard.open(DATA / "enwiki_sample.jsonl.zst", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(300)]
    path = tmp_path_factory.mktemp("articles") / "articles.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def build(request, articles, tmp_path_factory):
    kind = request.param
    out = tmp_path_factory.mktemp(f"build-{kind}")
    cfg = BuildConfig(do_whole_word_mask=True, max_seq_length=64, max_predictions_per_seq=10)
    run_build([str(articles)], str(out), cfg, VocabFile.read(TOKENIZERS[kind]))
    return kind, out


def test_the_build_validates_with_the_tokenizers_ids_and_layout(build):
    kind, out = build
    report = validate_build(out)
    assert report["ok"], report
    m = json.loads((out / "manifest.json").read_text())
    assert m["vocab"] == "tokenizer.json"
    assert m["tokenizer"] == {
        "type": kind, "vocab_size": 2000, "do_lower_case": False,
        "pad_id": 1, "unk_id": 3, "cls_id": 0, "sep_id": 2, "mask_id": 4,
        "pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>",
    }  # fmt: skip
    rows = read_shard(out / m["shards"][0]["path"]).to_pylist()
    for row in rows:
        ids = row["input_ids"]
        assert ids[0] == 0 and ids[row["a_len"] - 1] == 2 and ids[-1] == 2  # <s> A </s> B </s>
        assert ids.count(0) == 1 and ids.count(2) == 2 and 1 not in ids and 3 not in ids


def same_word(kind: str, pieces: list[str], j: int) -> bool:
    """Whether piece j surely continues the word of piece j-1, from the pieces alone.

    Unigram (Metaspace): a word is what lies between spaces, so a piece without "▁" continues one.
    Byte-level BPE glues letters after letters into one pre-token: a piece of ASCII letters after
    a piece of ASCII letters (no "Ġ", a space, between them) is in the same word, but for GPT-2's
    contractions ('s 't 're…), which are words of their own."""
    left, right = pieces[j - 1], pieces[j]
    if {left, right} & {"<s>", "</s>"}:
        return False
    if kind == "unigram":
        return not right.startswith("▁")
    left = left.removeprefix("Ġ")
    letters = left.isascii() and left.isalpha() and right.isascii() and right.isalpha()  # not "âĢĻ" (’)
    return letters and not (j >= 2 and pieces[j - 2].endswith("'"))  # "'t" of "Mal'tsov"


def test_whole_word_masks_never_split_a_word_of_the_tokenizer(build):
    kind, out = build
    tok = SubwordTokenizer(VocabFile.read(out / "tokenizer.json"))
    m = json.loads((out / "manifest.json").read_text())
    glued = checked = 0
    for entry in m["shards"]:
        for row in read_shard(out / entry["path"]).to_pylist():
            original = list(row["input_ids"])
            for p, label in zip(row["masked_positions"], row["masked_labels"]):
                original[p] = label
            chosen = np.zeros(len(original), dtype=bool)
            chosen[row["masked_positions"]] = True
            pieces = tok.decode_tokens(original)
            for j in range(1, len(pieces)):
                if (chosen[j - 1] or chosen[j]) and same_word(kind, pieces, j):
                    checked += 1
                    glued += chosen[j - 1] == chosen[j]
    assert checked > 500 and glued == checked


def test_a_tiny_model_trains_on_the_build(build, tmp_path):
    kind, out = build
    result = train(
        TrainConfig(data=str(out), out=str(tmp_path / "run"), steps=3, batch_size=8, log_every=1, progress=False)
    )
    assert result["step"] == 3 and np.isfinite(result["train"]["mlm_loss"])
    ckpt_cfg = json.loads((tmp_path / "run" / "run.json").read_text())
    assert ckpt_cfg["model_config"]["vocab_size"] == 2000 and ckpt_cfg["model_config"]["pad_token_id"] == 1
    export_loads_in_transformers(tmp_path / "run", tmp_path / "hf")


def export_loads_in_transformers(run_dir, folder):
    transformers = pytest.importorskip("transformers")
    import torch

    from trainer.export import export

    export(run_dir, folder)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert (tok.cls_token, tok.sep_token, tok.mask_token, tok.pad_token, tok.unk_token) == (
        "<s>", "</s>", "<mask>", "<pad>", "<unk>",
    )  # fmt: skip
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0, 2, 1, 3, 4,
    )  # fmt: skip
    enc = tok("The cat sat.", "It slept.", return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    assert ids[0] == 0 and ids.count(2) == 2 and ids[-1] == 2  # the build's <s> A </s> B </s>
    a_len = ids.index(2) + 1
    assert enc["token_type_ids"][0].tolist() == [0] * a_len + [1] * (len(ids) - a_len)
    model, info = transformers.BertForPreTraining.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.config.pad_token_id == 1 and model.config.vocab_size == 2000
    with torch.no_grad():
        logits = model(**enc).prediction_logits
    assert logits.shape == (1, len(ids), 2000)
