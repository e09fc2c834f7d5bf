import json
import shutil

import pytest
import torch

from tests.conftest import DATA
from tests.trainer.conftest import make_build
from trainer.export import export, hf_state_dict
from trainer.model import BertConfig, BertForPreTraining
from trainer.train import TrainConfig, train


def inputs(V, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (2, 24), generator=g)
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, 17:] = 0
    types = torch.zeros(2, 24, dtype=torch.long)
    types[:, 10:] = 1
    types[1, 17:] = 0
    return {"input_ids": ids * mask, "token_type_ids": types, "attention_mask": mask}


def test_mapping_covers_every_parameter_once():
    cfg = BertConfig.from_size("tiny", vocab_size=64)
    model = BertForPreTraining(cfg)
    hf = hf_state_dict(model.state_dict(), cfg)
    ours = sum(p.numel() for p in model.parameters())
    # everything but the duplicated decoder bias maps one to one
    assert sum(v.numel() for k, v in hf.items() if k != "cls.predictions.decoder.bias") == ours
    assert "cls.predictions.decoder.weight" not in hf  # tied to the word embeddings


def test_transformers_loads_the_export_with_identical_outputs(build_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    train(
        TrainConfig(data=str(build_dir), out=str(tmp_path / "run"), steps=3, batch_size=8, log_every=1, progress=False)
    )
    folder, _, pair_head_trained = export(tmp_path / "run", tmp_path / "hf")
    assert pair_head_trained
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in folder.iterdir()}
    ckpt = torch.load(next((tmp_path / "run").glob("ckpt-*.pt")), weights_only=False)
    ours = BertForPreTraining(BertConfig(**ckpt["model_config"])).eval()
    ours.load_state_dict(ckpt["model"])
    theirs, info = transformers.BertForPreTraining.from_pretrained(folder, output_loading_info=True)
    theirs.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    x = inputs(ours.cfg.vocab_size)
    with torch.no_grad():
        a = ours(**x)
        b = theirs(**x)
    real = x["attention_mask"].bool()
    torch.testing.assert_close(a["mlm_logits"][real], b.prediction_logits[real], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a["nsp_logits"], b.seq_relationship_logits, rtol=1e-4, atol=1e-4)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"


def _roberta_style_bpe(path):
    """A byte-level BPE as RoBERTa saves one: no prefix space, RobertaProcessing (``</s></s>`` between texts)."""
    from tokenizers import ByteLevelBPETokenizer, processors

    tk = ByteLevelBPETokenizer(add_prefix_space=False)
    text = (DATA / "sample_text.txt").read_text(encoding="utf-8").splitlines()
    tk.train_from_iterator(
        text, vocab_size=600, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tk._tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    tk.save(str(path))


@pytest.mark.parametrize("kind", ["uncased", "cased", "roberta", "no-template"])
def test_an_exported_tokenizer_json_encodes_as_the_build_did(tmp_path, kind):
    """AutoTokenizer on the export: the build's ids for each text, laid out as the model was trained."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import BertWordPieceTokenizer, Tokenizer

    from corpusgen.tokenizer import SubwordTokenizer, VocabFile
    from trainer.export import copy_tokenizer

    data = tmp_path / "data"
    data.mkdir()
    if kind in ("uncased", "cased"):
        vocab = str(DATA / "bert-base-uncased-vocab.txt")
        BertWordPieceTokenizer(vocab, lowercase=kind == "uncased").save(str(data / "tokenizer.json"))
    else:
        _roberta_style_bpe(data / "tokenizer.json")
        if kind == "no-template":  # the build finds <s> and </s> among the added tokens
            tk = Tokenizer.from_file(str(data / "tokenizer.json"))
            tk.post_processor = None
            tk.save(str(data / "tokenizer.json"))
    entry = SubwordTokenizer(VocabFile.read(data / "tokenizer.json")).describe()
    copy_tokenizer(data / "tokenizer.json", entry, tmp_path, 1024)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and config["model_max_length"] == 1024
    assert config["mask_token"] == entry["mask_token"] and config["pad_token"] == entry["pad_token"]
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    own = Tokenizer.from_file(str(data / "tokenizer.json"))
    a, b = "Hello World, the Quick fox.", "It ran in 2010."
    ids_a, ids_b = (own.encode(t, add_special_tokens=False).ids for t in (a, b))
    if kind == "cased":  # the export must not lower-case: here that changes the ids
        assert ids_a != own.encode(a.lower(), add_special_tokens=False).ids
    enc = hf(a, b)
    cls, sep = entry["cls_id"], entry["sep_id"]
    assert enc["input_ids"] == [cls, *ids_a, sep, *ids_b, sep]
    assert enc["token_type_ids"] == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
    assert hf(a)["input_ids"] == [cls, *ids_a, sep]


def test_export_refuses_a_folder_that_holds_files_unless_overwrite(build_dir, tmp_path):
    trained_run = tmp_path / "run"
    train(TrainConfig(data=str(build_dir), out=str(trained_run), steps=1, batch_size=4, log_every=1, progress=False))
    target = tmp_path / "hf"
    target.mkdir()
    (target / "important.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="folder is not empty.*--overwrite"):
        export(trained_run, target)
    assert sorted(p.name for p in target.iterdir()) == ["important.txt"]
    export(trained_run, target, overwrite=True)
    assert (target / "config.json").is_file() and (target / "important.txt").read_text() == "keep me"
    # a build's folder (its vocab.txt would be replaced) and a run's are never export targets
    for folder in (build_dir, trained_run):
        with pytest.raises(FileExistsError, match="a build or training run is there"):
            export(trained_run, folder, overwrite=True)
    # nor an unfinished build (shards and vocab.txt, no manifest yet) or a run before its first checkpoint
    unfinished, logs_only = tmp_path / "unfinished", tmp_path / "logs_only"
    shutil.copytree(build_dir, unfinished, ignore=shutil.ignore_patterns("manifest.json"))
    logs_only.mkdir()
    shutil.copy(trained_run / "run.json", logs_only / "run.json")
    for folder in (unfinished, logs_only):
        before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        with pytest.raises(FileExistsError, match="a build or training run is there"):
            export(trained_run, folder, overwrite=True)
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_export_ships_only_the_vocabulary_the_model_was_trained_with(build_dir, tmp_path):
    """A build redone in the same folder with another vocabulary is refused (ids the model never saw);
    the original given with --tokenizer is taken; with the build gone the weights come alone, said."""
    from click.testing import CliRunner

    from trainer.cli import export as export_command

    data = tmp_path / "data"
    shutil.copytree(build_dir, data)
    run_dir = tmp_path / "run"
    train(TrainConfig(data=str(data), out=str(run_dir), steps=1, batch_size=4, log_every=1, progress=False))
    original = tmp_path / "vocab.txt"
    shutil.copy(data / "vocab.txt", original)
    (data / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nother\n")  # the build redone
    done = CliRunner().invoke(export_command, [str(run_dir), "-o", str(tmp_path / "a")])
    assert done.exit_code == 1 and "not the vocabulary this model was trained with" in done.output, done.output
    assert "--tokenizer" in done.output and not (tmp_path / "a").exists()  # nothing written
    done = CliRunner().invoke(export_command, [str(run_dir), "-o", str(tmp_path / "b"), "--tokenizer", str(original)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "b" / "vocab.txt").read_bytes() == original.read_bytes()
    shutil.rmtree(data)
    done = CliRunner().invoke(export_command, [str(run_dir), "-o", str(tmp_path / "c")])
    assert done.exit_code == 0 and "no tokenizer" in done.output and "--tokenizer" in done.output, done.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["config.json", "model.safetensors"]


def test_export_over_an_earlier_export_leaves_none_of_its_tokenizer(build_dir, tmp_path):
    """AutoTokenizer prefers a tokenizer.json: an earlier export's, left beside a vocab.txt model (or a model
    whose build is gone), was loaded with weights it does not belong to."""
    data = tmp_path / "data"
    shutil.copytree(build_dir, data)
    run_dir = tmp_path / "run"
    train(TrainConfig(data=str(data), out=str(run_dir), steps=1, batch_size=4, log_every=1, progress=False))
    target = tmp_path / "hf"
    target.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "notes.txt"):  # an earlier BPE model's export
        (target / name).write_text("{}")
    export(run_dir, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json", "model.safetensors", "notes.txt", "tokenizer_config.json", "vocab.txt"
    ]  # fmt: skip
    assert (target / "vocab.txt").read_bytes() == (data / "vocab.txt").read_bytes()
    shutil.rmtree(data)
    assert export(run_dir, target, overwrite=True).tokenizer is None  # the build is gone: no tokenizer, none left
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]


def test_export_of_an_mlm_only_model_says_its_pair_head_is_untrained(tmp_path):
    """A model trained without NSP has a pooler and NSP head at their initial weights: the export says so."""
    from click.testing import CliRunner

    from trainer.cli import export as export_command

    data = make_build(tmp_path / "data", rows=200, heldout_rows=0, next_sentence="none")
    train(TrainConfig(data=str(data), out=str(tmp_path / "run"), steps=1, batch_size=4, log_every=1, progress=False))
    done = CliRunner().invoke(export_command, [str(tmp_path / "run"), "-o", str(tmp_path / "hf")])
    assert done.exit_code == 0, done.output
    assert "MLM-only" in done.output and "BertForMaskedLM" in done.output, done.output
    assert export(tmp_path / "run", tmp_path / "hf", overwrite=True).pair_head_trained is False
