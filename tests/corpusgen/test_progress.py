"""The progress line counts input files read in full, whether read whole or in byte ranges."""

import json

from corpusgen.intermediate import WORK_DIR
from corpusgen.progress import progress_line


def _marker(folder, name, record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")


def test_a_file_read_in_byte_ranges_counts_once_and_only_when_every_range_is_done(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * 3000)
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"y" * 10)
    docs = tmp_path / "out" / WORK_DIR / "docs"
    chunk = [{"chunk": "c", "path": "p", "documents": 1}]
    _marker(docs, "000000", {"input": str(small), "bytes": [0, None], "chunks": chunk, "counts": {}})
    _marker(docs, "000001-r0000", {"input": str(big), "bytes": [0, 1000], "chunks": chunk, "counts": {}})
    _marker(docs, "000001-r0001", {"input": str(big), "bytes": [1000, 2000], "chunks": chunk, "counts": {}})
    line = progress_line(tmp_path / "out", 4.0, 2)
    assert line.startswith("read 1/2 files"), line  # two of the big file's three ranges: not read yet
    assert "tokenizing done in" not in line
    _marker(docs, "000001-r0002", {"input": str(big), "bytes": [2000, 3000], "chunks": chunk, "counts": {}})
    tokens = tmp_path / "out" / WORK_DIR / "tokens"
    _marker(tokens, "c", {"token_file": "t", "counts": {"documents_cleaned": 5, "tokens_read": 2_000_000}})
    line = progress_line(tmp_path / "out", 4.0, 2)
    assert line.startswith("read 2/2 files · tokenized 1/4 chunks (5 documents, 2.0 M tokens, 0.50 M tokens/s)"), line
    assert line.endswith("· 4s · tokenizing done in ~12s"), line


def test_the_pool_steps_count_copies_made_and_shards_written(tmp_path):
    work = tmp_path / "out" / WORK_DIR
    _marker(work / "instances", "train-00000-of-00002.dupe-000", {"part": None, "counts": {}, "removed": None})
    _marker(work / "instances", "train-00000-of-00002.dupe-001", {"part": None, "counts": {}, "removed": None})
    line = progress_line(tmp_path / "out", 9.0, 1)
    assert "· 2 pool copies paired and masked ·" in line and "shards written" not in line, line
    entry = {"path": "shards/x.arrow"}
    _marker(work / "pools", "train-00000-of-00002.bin-113-128", {"entries": [entry, entry, entry], "counts": {}})
    _marker(work / "pools", "train-00000-of-00002.bin-097-112", {"entries": [entry], "counts": {}})
    assert "· 2 pool copies paired and masked · 4 shards written · 9s" in progress_line(tmp_path / "out", 9.0, 1)
