"""Packed MLM-only builds end to end: the bundled Wikipedia sample built with each packed layout (and at a
long context) validates, has the row properties of its layout, is byte-identical for 1 and 2 workers,
and trains a tiny BERT a few steps."""

import json

import numpy as np
import pytest
import zstandard

from corpusgen.config import BuildConfig
from corpusgen.shards import NSP_IGNORE, open_shard
from corpusgen.validate import validate_build
from pipelines.build import run_build
from tests.conftest import DATA
from trainer.data import ShardDataset
from trainer.train import TrainConfig, train


@pytest.fixture(scope="module")
def sample_slice(tmp_path_factory):
    lines = zstandard.ZstdDecompressor().decompress((DATA / "enwiki_sample.jsonl.zst").read_bytes()).splitlines()
    path = tmp_path_factory.mktemp("slice") / "slice.jsonl"
    path.write_bytes(b"\n".join(lines[:600]) + b"\n")
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory, sample_slice, vocab_file):
    out = {}
    for layout in ("full-sentences", "doc-sentences"):
        d = tmp_path_factory.mktemp(layout)
        cfg = BuildConfig(next_sentence=layout, dupe_factor=2, nsp_pool_tokens=50_000, heldout_fraction=0.05)
        run_build([str(sample_slice)], str(d), cfg, vocab_file)
        out[layout] = d
    return out


def rows(build):
    manifest = json.loads((build / "manifest.json").read_text())
    tables = [open_shard(build / e["path"]).read_all() for e in manifest["shards"]]
    return manifest, [r for t in tables for r in t.to_pylist()]


@pytest.mark.parametrize("layout", ["full-sentences", "doc-sentences"])
def test_packed_build_validates_with_its_row_properties(builds, layout):
    report = validate_build(builds[layout])
    assert report["ok"], report["defects"]
    manifest, all_rows = rows(builds[layout])
    cfg, tok = manifest["config"], manifest["tokenizer"]
    L = cfg["max_seq_length"]
    packing = manifest["stats"]["packing"]
    assert packing["packed_rows"] == len(all_rows) == manifest["stats"]["instances"]
    assert packing["segments"] == sum(len(r["doc_starts"]) for r in all_rows)
    assert packing["truncated_tokens"] == 0 and manifest["stats"]["tokens"]["truncated_away"] == 0
    assert manifest["stats"]["tokens"]["covered"] == 2 * manifest["stats"]["tokens"]["kept"]  # every token, each copy
    for r in all_rows:
        ids, starts = r["input_ids"], r["doc_starts"]
        assert ids[0] == tok["cls_id"] and ids[-1] == tok["sep_id"] and len(ids) <= L
        assert starts[0] == 0 and starts == sorted(set(starts)) and r["a_len"] == len(ids)
        assert [i for i, t in enumerate(ids) if t == tok["sep_id"]] == [s - 1 for s in starts[1:]] + [len(ids) - 1]
        assert r["next_sentence_label"] == NSP_IGNORE
    if layout == "full-sentences":
        pools = manifest["stats"]["nsp"]["pools"]
        assert pools >= 3
        short = sum(len(r["input_ids"]) < L - 1 for r in all_rows)
        assert short <= 2 * pools  # the last row of each pool, per copy
        assert sum(len(r["doc_starts"]) > 1 for r in all_rows) > len(all_rows) // 10  # rows cross documents
    else:
        assert all(len(r["doc_starts"]) == 1 for r in all_rows)
    assert packing["padding"]["share_at_most"] <= 0.02


def loader_padding(build, batch_size=32):
    """Padding positions over all positions in the trainer's batches (one epoch, length-binned)."""
    data = ShardDataset(build, batch_size=batch_size, seed=0, epochs=1, drop_last=False)
    pad = total = 0
    for batch in data:
        pad += int((~batch["attention_mask"]).sum())
        total += batch["attention_mask"].numel()
    return pad / total


@pytest.mark.parametrize("layout", ["full-sentences", "doc-sentences"])
def test_the_trainer_sees_at_most_2_percent_padding(builds, layout):
    manifest = json.loads((builds[layout] / "manifest.json").read_text())
    share = loader_padding(builds[layout])
    # the manifest's bound covers both splits, the loader reads the train split
    assert share <= 0.02 and manifest["stats"]["packing"]["padding"]["share_at_most"] <= 0.02


@pytest.mark.parametrize("layout", ["full-sentences", "doc-sentences"])
def test_packed_build_trains_mlm_only(builds, layout, tmp_path, capsys):
    cfg = TrainConfig(data=str(builds[layout]), out=str(tmp_path / "run"), steps=3, batch_size=8, log_every=3,
                      progress=False, attention_dropout=0.0)  # fmt: skip
    result = train(cfg)
    model_config = json.loads((tmp_path / "run" / "run.json").read_text())["model_config"]
    assert model_config["attention_probs_dropout_prob"] == 0.0 and model_config["hidden_dropout_prob"] == 0.1
    assert result["step"] == 3 and result["train"]["nsp_loss"] is None and result["eval"]["nsp_acc"] is None
    assert 5.0 < result["train"]["mlm_loss"] < 11.0
    out = capsys.readouterr().out
    assert "MLM only: the build (" + layout + ") has no NSP/SOP labels" in out
    assert ("attention kept inside each document" in out) == (layout == "full-sentences")


def test_packed_builds_are_byte_identical_for_1_and_2_workers(tmp_path, vocab_file):
    lines = zstandard.ZstdDecompressor().decompress((DATA / "enwiki_sample.jsonl.zst").read_bytes()).splitlines()
    src = tmp_path / "s.jsonl"
    src.write_bytes(b"\n".join(lines[:150]) + b"\n")
    for layout in ("full-sentences", "doc-sentences"):
        cfg = BuildConfig(next_sentence=layout, dupe_factor=2, nsp_pool_tokens=10_000, rows_per_shard=200)
        digests = []
        for workers in (1, 2):
            out = tmp_path / f"{layout}-{workers}"
            run_build([str(src)], str(out), cfg, vocab_file, workers=workers)
            digests.append({e["path"]: e["sha256"] for e in json.loads((out / "manifest.json").read_text())["shards"]})
        assert len(digests[0]) > 4 and digests[0] == digests[1]


def test_long_context_build_validates_and_trains_with_enough_positions(sample_slice, vocab_file, tmp_path):
    out = tmp_path / "long"
    cfg = BuildConfig(next_sentence="full-sentences", max_seq_length=2048, dupe_factor=1, max_predictions_per_seq=300)
    run_build([str(sample_slice)], str(out), cfg, vocab_file)
    report = validate_build(out)
    assert report["ok"], report["defects"]
    manifest, all_rows = rows(out)
    assert manifest["config"]["length_bin_width"] == 32
    shard = open_shard(out / manifest["shards"][0]["path"]).read_all()
    assert str(shard.schema.field("doc_starts").type) == "list<item: uint16>"
    assert str(shard.schema.field("input_ids").type) == "list<item: uint16>"
    lengths = np.array([len(r["input_ids"]) for r in all_rows])
    assert (lengths >= 2047).sum() >= len(lengths) - manifest["stats"]["nsp"]["pools"]
    common = dict(data=str(out), steps=2, batch_size=2, log_every=2, progress=False, eval_batches=1)
    with pytest.raises(SystemExit, match="pass --max-position-embeddings 2048 or more"):
        train(TrainConfig(out=str(tmp_path / "few"), max_position_embeddings=1024, **common))
    result = train(TrainConfig(out=str(tmp_path / "run"), **common))
    assert result["step"] == 2 and result["train"]["nsp_loss"] is None
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["model_config"]["max_position_embeddings"] == 2048
    result = train(TrainConfig(out=str(tmp_path / "more"), max_position_embeddings=4096, **{**common, "steps": 1}))
    assert json.loads((tmp_path / "more" / "run.json").read_text())["model_config"]["max_position_embeddings"] == 4096


@pytest.mark.e2e
def test_torchrun_two_ranks_train_a_packed_build_mlm_only(builds, tmp_path):
    """DDP with the NSP head out of the graph: its frozen parameters must not stall the gradient all-reduce."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer", "train", "--data", str(builds["full-sentences"]), "--out", str(out), "--steps", "3",
           "--batch-size", "4", "--log-every", "3", "--eval-batches", "1", "--no-progress", "--trace"]  # fmt: skip
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "x2" in r.stdout and "MLM only" in r.stdout
    traces = [[json.loads(x) for x in (out / f"trace-rank{k}.jsonl").read_text().splitlines()] for k in (0, 1)]
    assert [t["weights_sha256"] for t in traces[0]] == [t["weights_sha256"] for t in traces[1]]
    assert len({t["weights_sha256"] for t in traces[0]}) == 3


def test_a_packed_run_stopped_and_resumed_ends_where_an_uninterrupted_one_does(builds, tmp_path):
    common = dict(data=str(builds["full-sentences"]), steps=4, batch_size=8, log_every=1, progress=False,
                  eval_batches=1, shuffle_buffer=256)  # fmt: skip
    full = train(TrainConfig(out=str(tmp_path / "full"), **common))
    train(TrainConfig(out=str(tmp_path / "split"), stop_after=2, **common))
    resumed = train(TrainConfig(out=str(tmp_path / "split"), resume=True, **common))
    timing = {"seq_per_s", "tokens_per_s"}
    assert {k: v for k, v in resumed["train"].items() if k not in timing} == {
        k: v for k, v in full["train"].items() if k not in timing
    }
    assert resumed["eval"] == full["eval"]
