"""Each masking option end to end on the bundled sample corpus: it builds, validates (layout, budgets,
rates, the measured statistics) and trains a tiny model a few steps; the loader's dynamic masks and
mask copies follow the epoch and resume exactly."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from corpusgen.config import BuildConfig
from corpusgen.stats import KIND_KEPT, KIND_MASK, KIND_RANDOM
from corpusgen.validate import validate_build
from pipelines.build import run_build
from tests.conftest import DATA
from trainer.data import ShardDataset, ShardLoader
from trainer.train import TrainConfig, train

MASK_ID = 103  # bert-base-uncased, the bundled vocabulary


def build(out, vocab_file, **options):
    cfg = BuildConfig(dupe_factor=3, heldout_fraction=0.0, rows_per_batch=16, **options)
    run_build([str(DATA / "sample_text.txt")], str(out), cfg, vocab_file)
    return out


def manifest(build_dir):
    return json.loads((build_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def dynamic_build(tmp_path_factory, vocab_file):
    return build(tmp_path_factory.mktemp("dynamic"), vocab_file, dynamic_masking=True, mask_scheme="span")


@pytest.fixture(scope="module")
def copies_build(tmp_path_factory, vocab_file):
    return build(tmp_path_factory.mktemp("copies"), vocab_file, mask_copies=2)


@pytest.mark.parametrize(
    "options",
    [
        {"mask_scheme": "span"},
        {"dynamic_masking": True},
        {"dynamic_masking": True, "mask_scheme": "whole-word"},
        {"mask_copies": 3, "mask_scheme": "whole-word"},
        {"mask_replace_prob": 0.5, "random_replace_prob": 0.25},
        {"masked_lm_prob": 0.3},
    ],
    ids=["span", "dynamic", "dynamic-whole-word", "copies", "split", "rate30"],
)
def test_option_builds_validates_and_trains(tmp_path, vocab_file, options):
    out = build(tmp_path / "build", vocab_file, **options)
    m = manifest(out)
    assert {k: m["config"][k] for k in options} == options
    assert m["config"]["max_predictions_per_seq"] == (39 if options.get("masked_lm_prob") == 0.3 else 20)
    report = validate_build(out)
    assert report["ok"], report["defects"]
    masking = m["stats"]["masking"]
    assert masking["masked"] > 0 and masking["candidates"] > 0
    layout = "dynamic" if options.get("dynamic_masking") else "copies" if options.get("mask_copies") else "static"
    assert (masking["layout"], masking["mask_sets"]) == (layout, options.get("mask_copies", 1))
    assert report["checked"]["masked_share"] == masking["masked_share"]
    assert report["checked"]["mask_share"] == masking["mask_share"]
    result = train(
        TrainConfig(
            data=str(out), out=str(tmp_path / "run"), model="tiny", steps=3, batch_size=8, log_every=1, progress=False
        )  # fmt: skip
    )
    assert result["step"] == 3 and np.isfinite(result["train"]["mlm_loss"])


def shown_masks(batch):
    """Per row of a batch: (positions, what the model sees there)."""
    out = []
    for ids, pos, valid in zip(batch["input_ids"], batch["masked_positions"], batch["masked_valid"]):
        p = pos[valid]
        out.append((tuple(p.tolist()), tuple(ids[p].tolist())))
    return out


def stream(build_dir, batches, *, seed=0, state=None):
    ds = ShardDataset(build_dir, batch_size=4, seed=seed, shuffle_buffer=16)
    loader = ShardLoader(ds)
    if state is not None:
        loader.load_state_dict(state)
    loader.trace_rows = []
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == batches:
            break
    return out, loader


def test_dynamic_masks_follow_the_epoch_and_resume_exactly(dynamic_build):
    rows = manifest(dynamic_build)["stats"]["instances"]
    full, loader = stream(dynamic_build, 3 * rows // 4)  # three epochs
    masks: dict[int, list] = {}
    for batch, ids in zip(full, loader.trace_rows):
        for row, mask in zip(ids, shown_masks(batch)):
            masks.setdefault(row, []).append(mask)
    seen = [m for m in masks.values() if len(m) >= 2]
    assert len(seen) >= rows // 2
    assert sum(len(set(m)) == len(m) for m in seen) >= 0.9 * len(seen), "each epoch draws other masks"
    again, _ = stream(dynamic_build, len(full))
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(full, again)), "reproducible"
    # stopped after 10 batches and resumed: the rest of the stream is the uninterrupted one's
    _, stopped = stream(dynamic_build, 10)
    rest, _ = stream(dynamic_build, len(full) - 10, state=stopped.state_dict())
    for a, b in zip(full[10:], rest, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_build_measures_the_masks_the_loader_draws_at_epoch_0(dynamic_build):
    ds = ShardDataset(dynamic_build, batch_size=4, seed=3, epochs=1, drop_last=False)
    kinds = Counter()
    for batch in ds:
        for (_, shown), labels, valid in zip(shown_masks(batch), batch["masked_labels"], batch["masked_valid"]):
            lab = labels[valid].tolist()
            kinds[KIND_MASK] += sum(s == MASK_ID for s in shown)
            kinds[KIND_KEPT] += sum(s == x for s, x in zip(shown, lab))
            kinds[KIND_RANDOM] += sum(s != MASK_ID and s != x for s, x in zip(shown, lab))
    counters = manifest(dynamic_build)["counters"]
    assert kinds == Counter({k: counters[k] for k in (KIND_MASK, KIND_KEPT, KIND_RANDOM)})


def test_mask_copies_show_set_epoch_mod_n(copies_build):
    report = validate_build(copies_build)
    assert report["ok"], report["defects"]
    rows = manifest(copies_build)["stats"]["instances"]
    ds = ShardDataset(copies_build, batch_size=4, seed=0, epochs=3, drop_last=False, shuffle_buffer=16)
    ds.with_row_ids = True
    masks: dict[int, list] = {}
    for batch in ds:
        for row, mask in zip(batch["row_ids"].tolist(), shown_masks(batch)):
            masks.setdefault(row, []).append(mask)
    assert len(masks) == rows and all(len(m) == 3 for m in masks.values())
    # epochs 0 and 2 show set 0, epoch 1 set 1: two distinct mask sets per row, one of them twice
    assert all(sorted(Counter(m).values()) in ([1, 2], [3]) for m in masks.values())
    assert sum(len(set(m)) == 2 for m in masks.values()) >= 0.9 * rows


def test_validate_checks_the_rates_and_the_measured_statistics(tmp_path, vocab_file, dynamic_build):
    out = build(tmp_path / "static", vocab_file)
    m = manifest(out)
    m["config"]["mask_replace_prob"], m["config"]["random_replace_prob"] = 0.5, 0.25  # not what the rows hold
    (out / "manifest.json").write_text(json.dumps(m))
    defects = validate_build(out)["defects"]
    assert any("masked_mask share" in d and "mask_replace_prob 0.5" in d for d in defects), defects

    m = manifest(dynamic_build)
    m["counters"][KIND_MASK] += 1
    tampered = tmp_path / "dynamic"
    tampered.mkdir()
    for f in dynamic_build.rglob("*"):
        if f.is_file():
            (tampered / f.relative_to(dynamic_build)).parent.mkdir(parents=True, exist_ok=True)
            (tampered / f.relative_to(dynamic_build)).write_bytes(f.read_bytes())
    (tampered / "manifest.json").write_text(json.dumps(m))
    defects = validate_build(tampered)["defects"]
    assert any(f"statistic {KIND_MASK} is" in d for d in defects), defects


@pytest.mark.parametrize("layout", ["dynamic", "copies"])
def test_inspect_shows_the_masks_of_either_layout(dynamic_build, copies_build, layout):
    from click.testing import CliRunner

    from corpusgen.cli import cli

    build_dir = dynamic_build if layout == "dynamic" else copies_build
    result = CliRunner().invoke(cli, ["inspect", str(build_dir), "-n", "2"])
    assert result.exit_code == 0, result.output
    header = "masks the loader draws at epoch 0" if layout == "dynamic" else "2 mask sets per row, set 0 shown"
    assert header in result.output and result.output.count("[MASK→") >= 5


def test_dynamic_span_build_with_a_bpe_tokenizer_masks_its_words(tmp_path):
    """Word starts come from the tokenizer's word ids; a dynamic build stores them and the loader's
    spans cover whole words by them."""
    from corpusgen.masking import build_vocab_tables
    from corpusgen.shards import read_shard
    from corpusgen.tokenizer import VocabFile
    from tests.conftest import BPE_TOKENIZER

    out = tmp_path / "bpe"
    cfg = BuildConfig(dupe_factor=2, heldout_fraction=0.0, dynamic_masking=True, mask_scheme="span", max_seq_length=64)
    run_build([str(DATA / "sample_text.txt")], str(out), cfg, VocabFile.read(BPE_TOKENIZER))
    report = validate_build(out)
    assert report["ok"], report["defects"]
    tables = build_vocab_tables("tokenizer.json", BPE_TOKENIZER.read_bytes())
    stored = []  # (unmasked ids, word starts) by row id: train shards in manifest order
    for e in (e for e in manifest(out)["shards"] if e["split"] == "train"):
        table = read_shard(out / e["path"])
        for ids, ws in zip(table.column("input_ids").to_pylist(), table.column("word_starts").to_pylist()):
            stored.append((np.array(ids), np.array(ws)))
    ds = ShardDataset(out, batch_size=4, seed=0, epochs=1, drop_last=False)
    ds.with_row_ids = True
    whole, multi_token = 0, 0
    for batch in ds:
        for r, pos, valid in zip(batch["row_ids"].tolist(), batch["masked_positions"], batch["masked_valid"]):
            ids, ws = stored[r]
            cand = ~tables.is_special[ids]
            word = np.cumsum(ws)  # word number of every position
            chosen = np.zeros(len(ids), bool)
            chosen[pos[valid].numpy()] = True
            for w in np.unique(word[chosen]):
                in_word = (word == w) & cand
                whole += int(chosen[in_word].all())
                multi_token += int(in_word.sum() > 1)
                assert chosen[in_word].all(), "a chosen word is chosen whole"
    assert whole > 100 and multi_token > 10
    result = train(
        TrainConfig(
            data=str(out), out=str(tmp_path / "run"), model="tiny", steps=3, batch_size=8, log_every=1, progress=False
        )  # fmt: skip
    )
    assert result["step"] == 3
