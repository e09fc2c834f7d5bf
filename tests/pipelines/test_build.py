"""Whole builds: the bundled Wikipedia sample at the defaults, determinism, bad input."""

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard

from corpusgen.config import BuildConfig
from corpusgen.shards import FORMAT_VERSION, open_shard, shard_schema
from corpusgen.stats import binomial_halfwidth
from corpusgen.validate import validate_build
from pipelines.build import run_build
from tests.conftest import DATA


def test_manifest_layout(enwiki_build, enwiki_manifest):
    m = enwiki_manifest
    assert m["format_version"] == FORMAT_VERSION
    assert m["config"]["dupe_factor"] == 2 and m["config"]["do_lower_case"] is True
    assert m["vocab"] == "vocab.txt"
    assert hashlib.sha256((enwiki_build / "vocab.txt").read_bytes()).hexdigest() == m["vocab_sha256"]
    assert m["tokenizer"]["vocab_size"] == 30522 and m["tokenizer"]["mask_id"] == 103
    assert {"train", "validation"} == {e["split"] for e in m["shards"]}
    for e in m["shards"]:
        assert set(e) == {"path", "rows", "tokens", "bin", "bytes", "sha256", "split"}
        path = enwiki_build / e["path"]
        assert not Path(e["path"]).is_absolute() and path.stat().st_size == e["bytes"]
        reader = open_shard(path)
        assert reader.schema.equals(shard_schema(30522, 128))
        assert reader.get_batch(0).column("input_ids").type == pa.list_(pa.uint16())
    assert not list(enwiki_build.rglob("*.tmp*")), "no temporary files left behind"
    assert m["created"].endswith("Z")


def test_build_validates(enwiki_build):
    report = validate_build(enwiki_build)
    assert report["ok"], report["defects"]
    assert report["checked"]["rows"] > 20_000


def test_rates_match_bert(enwiki_manifest):
    s = enwiki_manifest["stats"]
    m = s["masking"]
    masked = m["masked"]
    assert abs(m["masked_share"] - 0.15) < 0.005
    for kind, p in (("mask_share", 0.8), ("random_share", 0.1), ("kept_share", 0.1)):
        assert abs(m[kind] - p) <= min(0.015, binomial_halfwidth(masked, p)), kind
    n = s["instances"]
    assert s["nsp"]["next"] + s["nsp"]["random"] == n
    assert abs(s["nsp"]["random_share"] - 0.5) <= min(0.02, binomial_halfwidth(n, 0.5))
    assert abs(s["short_target_instances"] / n - 0.1) <= binomial_halfwidth(n, 0.1)
    assert s["nsp"]["pools"] == 3  # ceil(1.03M / 1M) = 2 train pools + 1 held-out pool


def test_tokens_are_accounted_for(enwiki_manifest):
    s = enwiki_manifest["stats"]
    t = s["tokens"]
    dupe = enwiki_manifest["config"]["dupe_factor"]
    assert t["read"] == t["kept"] + t["in_dropped_documents"]
    assert t["covered"] + t["truncated_away"] == dupe * t["kept"]
    assert t["in_instances"] == 3 * s["instances"] + t["placed_own"] + t["borrowed"]
    assert t["truncated_away"] < 0.1 * dupe * t["kept"]
    d = s["documents"]
    assert d["read"] == 3000 and d["kept"] + sum(s["drops"].values()) == d["read"]
    assert sum(int(v) for v in s["length_histogram"].values()) == s["instances"]


def test_bytes_per_token(enwiki_manifest):
    shards = enwiki_manifest["shards"]
    assert sum(e["bytes"] for e in shards) / sum(e["tokens"] for e in shards) <= 1.6


def _slice(tmp_path, n_docs):
    lines = (
        zstandard.ZstdDecompressor().decompress((DATA / "enwiki_sample.jsonl.zst").read_bytes()).splitlines()[:n_docs]
    )
    path = tmp_path / "slice.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _shard_digests(out: Path) -> dict:
    return {e["path"]: e["sha256"] for e in json.loads((out / "manifest.json").read_text())["shards"]}


@pytest.mark.slow
def test_byte_identical_across_worker_counts(tmp_path, vocab_file):
    src = _slice(tmp_path, 400)
    cfg = BuildConfig(dupe_factor=2, rows_per_shard=500, nsp_pool_tokens=50_000)
    run_build([str(src)], str(tmp_path / "w1"), cfg, vocab_file, workers=1)
    run_build([str(src)], str(tmp_path / "w2"), cfg, vocab_file, workers=2)
    one, two = _shard_digests(tmp_path / "w1"), _shard_digests(tmp_path / "w2")
    assert len(one) > 4 and one == two
    m = json.loads((tmp_path / "w1" / "manifest.json").read_text())
    assert m["stats"]["nsp"]["pools"] > 2


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, vocab_file):
    src = _slice(tmp_path, 120)
    run_build([str(src)], str(tmp_path / "a"), BuildConfig(dupe_factor=1), vocab_file)
    run_build([str(src)], str(tmp_path / "b"), BuildConfig(dupe_factor=1), vocab_file)
    run_build([str(src)], str(tmp_path / "c"), BuildConfig(dupe_factor=1, random_seed=1), vocab_file)
    a, b, c = (_shard_digests(tmp_path / x) for x in "abc")
    assert a == b
    assert set(a.values()).isdisjoint(c.values())


def test_the_vocabulary_reaches_the_steps_as_a_copy_in_the_work_folder(tmp_path, vocab_file, monkeypatch):
    """Steps carry the copy's path and checksum (not the bytes, which Beam would pickle into each);
    the copy is gone with the work folder once the manifest is written, and the build's vocabulary is
    the one given. A copy that disappears or changes mid-build stops the step with its path."""
    from pipelines.transforms import StagedVocab

    src = _slice(tmp_path, 30)
    run_build([str(src)], str(tmp_path / "o"), BuildConfig(dupe_factor=1), vocab_file)
    assert (tmp_path / "o" / "vocab.txt").read_bytes() == vocab_file.data
    assert not (tmp_path / "o" / "_work").exists()
    staged = StagedVocab.of(vocab_file, str(tmp_path / "w"))
    assert staged.path.startswith(str(tmp_path / "w" / "vocabulary"))
    with pytest.raises(RuntimeError, match="cannot be read.*Rerun the build"):
        staged.load()
    assert StagedVocab.written(vocab_file, str(tmp_path / "w")) == staged
    assert staged.load() == vocab_file
    Path(staged.path).write_bytes(vocab_file.data + b"extra\n")
    with pytest.raises(RuntimeError, match="changed while it ran"):
        staged.load()


def test_bad_inputs_are_skipped_and_counted(tmp_path, vocab_file):
    src = tmp_path / "in"
    src.mkdir()
    good = (DATA / "sample_text.txt").read_bytes()
    (src / "good.txt").write_bytes(good)
    (src / "dup.txt").write_bytes(good)  # every document an exact duplicate
    (src / "latin1.txt").write_bytes("Caf\xe9 au lait, cr\xe8me br\xfbl\xe9e.\nSecond line here.\n".encode("latin-1"))
    (src / "broken.txt").write_bytes("Grüße aus Köln. Schön.\n\n".encode() + b"Kaputt \xff\xfe hier.\n")
    (src / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (src / "empty.txt").write_bytes(b"")
    (src / "long.txt").write_bytes(b"A" * (2 << 20) + b"\n\nShort doc. Two sentences here.\n")
    (src / "corrupt.txt.gz").write_bytes(gzip.compress(b"Some text. More text.\n" * 500)[:100] + b"\x00garbage" * 40)
    (src / "bad.jsonl").write_bytes(b'{"text": "Fine one. Fine two."}\n{oops\n{"text": 5}\n{"title": "x"}\n')
    files = sorted(str(p) for p in src.iterdir())
    out = tmp_path / "out"
    run_build(files, str(out), BuildConfig(dupe_factor=1, max_line_bytes=1 << 20), vocab_file)
    m = json.loads((out / "manifest.json").read_text())
    assert m["stats"]["drops"] == {
        "binary_file": 1,
        "empty_file": 1,
        "invalid_utf8": 1,
        "line_too_long": 1,
        "malformed_json": 1,
        "missing_text_field": 1,
        "non_string_text": 1,
        "duplicate_document": 3,
        "unreadable_file": 1,
    }
    assert m["stats"]["documents"]["kept"] == 7  # 3 of sample_text, latin-1, German, the short doc, the JSON one
    assert m["stats"]["cleaning"]["legacy_encoding_files"] == 1
    assert validate_build(out)["ok"]
