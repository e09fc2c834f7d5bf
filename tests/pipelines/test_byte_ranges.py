"""A large JSON-lines file read as byte ranges by several workers: the same documents, counts and shards."""

import io
import json
import random
from collections import Counter

import pytest

import pipelines.build
import pipelines.transforms
from corpusgen import readers
from corpusgen.config import BuildConfig
from pipelines.build import run_build
from pipelines.transforms import byte_ranges
from tests.pipelines.test_build import _shard_digests, _slice


def _awkward_jsonl() -> bytes:
    """JSON lines with the faults a reader counts, CRLF ends, blank lines and long records."""
    rng = random.Random(11)
    lines = []
    for i in range(300):
        kind = rng.random()
        if kind < 0.05:
            lines.append(b"{not json")
        elif kind < 0.08:
            lines.append(b"[1, 2]")
        elif kind < 0.11:
            lines.append(json.dumps({"title": i}).encode())
        elif kind < 0.13:
            lines.append(b"")
        elif kind < 0.15:
            lines.append(b'{"text": "a\x00b"}')
        else:
            words = " ".join(
                rng.choice(["alpha", "beta", "\u00e9t\u00e9", "\u4e2d\u6587"]) for _ in range(rng.randrange(1, 400))
            )
            lines.append(json.dumps({"text": f"{i}. {words}."}, ensure_ascii=rng.random() < 0.5).encode())
    return b"\xef\xbb\xbf" + b"".join(line + (b"\r\n" if rng.random() < 0.2 else b"\n") for line in lines)


def _read(path, byte_range=None):
    counts = Counter()
    docs = list(readers.read_documents(str(path), BuildConfig(), counts, byte_range=byte_range))
    return docs, counts


@pytest.mark.parametrize("parts", [2, 3, 7, 40])
def test_byte_ranges_give_the_whole_files_documents_and_counts(tmp_path, parts):
    path = tmp_path / "in.jsonl"
    data = _awkward_jsonl()
    path.write_bytes(data)
    whole, whole_counts = _read(path)
    rng = random.Random(parts)
    cuts = sorted(rng.sample(range(1, len(data)), parts - 1))
    docs, counts = [], Counter()
    for lo, hi in zip([0, *cuts], [*cuts, len(data)]):
        d, c = _read(path, (lo, hi))
        docs += d
        counts.update(c)
    assert docs == whole and len(whole) > 200
    assert counts == whole_counts and counts["files_read"] == 1
    assert whole_counts["malformed_json"] > 0 and whole_counts["missing_text_field"] > 0


def test_line_ranges_tile_any_bytes(monkeypatch):
    monkeypatch.setattr(readers, "_CHUNK", 5)  # blocks smaller than lines: every edge is met
    rng = random.Random(2)
    for _ in range(2000):
        data = bytes(rng.choice(b"ab\n") for _ in range(rng.randrange(0, 50)))
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(5)))) if len(data) > 1 else []
        got = []
        for lo, hi in zip([0, *cuts], [*cuts, len(data)]):
            stream, part = readers.LineRange(io.BytesIO(data), lo, hi), b""
            while block := stream.read():
                part += block
            got.append(part)
        assert b"".join(got) == data
        for i, part in enumerate(got):  # each range ends with a whole line, or the file's last one
            assert not part or part.endswith(b"\n") or not any(got[i + 1 :])


def test_only_uncompressed_utf8_json_lines_are_split(tmp_path):
    cfg = BuildConfig()
    text = b'{"text": "a b c."}\n'
    assert readers.splittable("a.jsonl", cfg, text)
    assert readers.splittable("a.jsonl", cfg, b"\xef\xbb\xbf" + text)
    assert not readers.splittable("a.jsonl.zst", cfg, text)
    assert not readers.splittable("a.txt", cfg, text)
    assert not readers.splittable("a.jsonl", cfg, "\ufeff".encode("utf-16-le") + text.decode().encode("utf-16-le"))
    assert not readers.splittable("a.jsonl", cfg, bytes(range(256)) * 64)
    assert not readers.splittable("a.jsonl", cfg.replace(encoding="latin-1"), text)
    # planning: a small file stays whole, a large one is cut into ranges that tile it
    path = tmp_path / "big.jsonl"
    path.write_bytes(text * 1000)
    assert list(byte_ranges((4, str(path)), cfg, 1 << 20)) == [(4, str(path), 0, 0, None)]
    parts = list(byte_ranges((4, str(path)), cfg, 5000))
    assert [p[2] for p in parts] == list(range(4)) and parts[0][3] == 0 and parts[-1][4] == len(text) * 1000
    assert all(a[4] == b[3] for a, b in zip(parts, parts[1:]))
    fifo_like = tmp_path / "missing.jsonl"
    assert list(byte_ranges((0, str(fifo_like)), cfg, 10)) == [(0, str(fifo_like), 0, 0, None)]


def test_a_large_table_or_archive_under_a_json_lines_name_is_read_whole(tmp_path):
    """Its first range skipped it whole (binary_file: 'a Parquet file; name it *.parquet …'), and the
    other ranges read the rest of its bytes as JSON lines: thousands of malformed_json and nul_byte."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = BuildConfig()
    path = tmp_path / "table.jsonl"
    pq.write_table(
        pa.table({"text": [f"Sentence {i} of a longer text here." for i in range(4000)]}), path, compression="none"
    )
    head = path.read_bytes()[: 1 << 16]
    assert not readers.splittable(str(path), cfg, head)
    assert list(byte_ranges((0, str(path)), cfg, 5000)) == [(0, str(path), 0, 0, None)]
    text = b'{"text": "a b c."}\n' * 40
    for magic in (b"ARROW1\x00\x00", b"FEA1\x00\x00\x00\x00", b"PK\x03\x04"):
        assert not readers.splittable("a.jsonl", cfg, magic + text)
    counts = Counter()
    docs = list(readers.read_documents(str(path), cfg, counts))
    assert docs == [] and counts[readers.BINARY_FILE] == 1 and counts[readers.MALFORMED_JSON] == 0


def test_a_build_read_in_byte_ranges_has_the_same_shards_and_counts(tmp_path, vocab_file, monkeypatch):
    src = _slice(tmp_path, 300)
    cfg = BuildConfig(dupe_factor=1, nsp_pool_tokens=60_000)
    run_build([str(src)], str(tmp_path / "whole"), cfg, vocab_file)
    monkeypatch.setattr(pipelines.build, "range_bytes_for", lambda chunk_chars: src.stat().st_size // 5 + 1)
    record = tmp_path / "planned.json"  # the runner runs a copy of the function: it tells by a file

    def recording(*args):
        parts = list(byte_ranges(*args))
        record.write_text(json.dumps(parts))
        return parts

    monkeypatch.setattr(pipelines.transforms, "byte_ranges", recording)
    run_build([str(src)], str(tmp_path / "ranges"), cfg, vocab_file, workers=1)
    planned = json.loads(record.read_text())
    assert len(planned) == 5 and planned[-1][4] == src.stat().st_size
    assert _shard_digests(tmp_path / "whole") == _shard_digests(tmp_path / "ranges")
    stats = [json.loads((tmp_path / d / "manifest.json").read_text())["stats"] for d in ("whole", "ranges")]
    assert stats[0] == stats[1] and stats[0]["files"]["read"] == 1
