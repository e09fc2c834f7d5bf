"""Shard format v1: round trips, widths, the local build writer, and what validate catches."""

import json

import numpy as np
import pyarrow as pa
import pytest

from corpusgen.config import BuildConfig
from corpusgen.shards import (
    Instances,
    ManifestError,
    cut_into_shards,
    load_manifest,
    open_shard,
    read_shard,
    serialize_shard,
    shard_path,
    shard_schema,
    write_build,
)
from corpusgen.validate import validate_build

TOKENIZER = {"type": "wordpiece", "vocab_size": 30522, "do_lower_case": True,
             "pad_id": 0, "unk_id": 100, "cls_id": 101, "sep_id": 102, "mask_id": 103}  # fmt: skip


def instances(rows):
    """Rows of (ids, a_len, positions, labels, nsp) → Instances."""
    return Instances(
        input_ids=np.concatenate([np.array(r[0]) for r in rows]).astype(np.uint16),
        lengths=np.array([len(r[0]) for r in rows], dtype=np.int32),
        a_len=np.array([r[1] for r in rows], dtype=np.uint16),
        masked_positions=np.concatenate([np.array(r[2], dtype=np.int64) for r in rows]).astype(np.uint8),
        num_masked=np.array([len(r[2]) for r in rows], dtype=np.int32),
        masked_labels=np.concatenate([np.array(r[3], dtype=np.int64) for r in rows]).astype(np.uint16),
        next_sentence_label=np.array([r[4] for r in rows], dtype=np.int8),
        order_key=np.arange(len(rows), dtype=np.uint64)[::-1].copy(),
    )


ROWS = [
    ([101, 2023, 103, 102, 2003, 102], 4, [2], [2742], 0),  # "this [MASK] [SEP] is"
    ([101, 7592, 102, 2088, 999, 103, 102], 3, [1, 5], [7592, 1012], 1),  # kept + mask
    ([101, 2307, 102, 3899, 102], 3, [3], [2172], 0),  # random replacement
]


def test_widths_follow_the_vocabulary_and_sequence_length():
    assert shard_schema(30522, 128).field("input_ids").type == pa.list_(pa.uint16())
    assert shard_schema(30522, 128).field("masked_positions").type == pa.list_(pa.uint8())
    assert shard_schema(65535, 128).field("input_ids").type == pa.list_(pa.uint16())
    assert shard_schema(70000, 512).field("masked_labels").type == pa.list_(pa.uint32())
    assert shard_schema(70000, 512).field("masked_positions").type == pa.list_(pa.uint16())


def test_take_and_concat_keep_rows_whole():
    inst = instances(ROWS)
    back = Instances.concat([inst.take(np.array([2])), inst.take(np.array([0, 1]))])
    assert back.lengths.tolist() == [5, 6, 7]
    assert back.input_ids.tolist() == ROWS[2][0] + ROWS[0][0] + ROWS[1][0]
    assert back.masked_labels.tolist() == [2172, 2742, 7592, 1012]


def test_serialize_round_trip_is_exact_and_zstd_compressed():
    data = serialize_shard(instances(ROWS), shard_schema(30522, 128), zstd_level=3, rows_per_batch=2)
    reader = pa.ipc.open_file(pa.BufferReader(data))
    assert reader.num_record_batches == 2
    table = reader.read_all()
    assert [
        (r["input_ids"], r["a_len"], r["masked_positions"], r["masked_labels"], r["next_sentence_label"])
        for r in table.to_pylist()
    ] == [tuple(r) for r in ROWS]
    # record batches carry zstd-compressed buffers (the body is smaller than the raw buffers)
    uncompressed = pa.BufferOutputStream()
    with pa.ipc.new_file(uncompressed, table.schema) as w:
        w.write_table(table, max_chunksize=2)
    assert data != uncompressed.getvalue().to_pybytes()


@pytest.fixture
def small_build(tmp_path):
    cfg = BuildConfig(rows_per_shard=2, zstd_level=3)
    write_build(tmp_path, {"train": instances(ROWS)}, cfg, vocab_name="vocab.txt",
                vocab_bytes=b"[PAD]\n", tokenizer=TOKENIZER)  # fmt: skip
    return tmp_path


def test_write_build_then_validate(small_build):
    m = load_manifest(small_build)
    assert [e["path"] for e in m["shards"]] == [
        "shards/train/bin_001-016/pool-00000-of-00001.part-000-of-002.arrow",
        "shards/train/bin_001-016/pool-00000-of-00001.part-001-of-002.arrow",
    ]
    # rows come out in order_key order (here: reversed), cut into equal parts
    a_len = [read_shard(small_build / e["path"]).column("a_len").to_pylist() for e in m["shards"]]
    assert a_len == [[r[1] for r in ROWS[::-1]][:1], [r[1] for r in ROWS[::-1]][1:]]
    assert m["counters"] == {"instances": 3, "instances_train": 3, "instance_tokens": 18, "nsp_next": 2,
                             "nsp_random": 1, "masked_mask": 2, "masked_kept": 1, "masked_random": 1,
                             "length_5": 1, "length_6": 1, "length_7": 1}  # fmt: skip
    report = validate_build(small_build)
    assert report["ok"], report["defects"]
    assert report["checked"]["rows"] == 3


def test_validate_catches_corruption_stale_files_and_wrong_stats(small_build):
    m = load_manifest(small_build)
    shard = small_build / m["shards"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    (small_build / "shards" / "train" / "stray.arrow").write_bytes(b"x")
    m["counters"]["nsp_random"] = 5
    (small_build / "manifest.json").write_text(json.dumps(m))
    defects = validate_build(small_build)["defects"]
    assert any("sha256 differs" in d for d in defects)
    assert any("stray.arrow" in d and "not listed" in d for d in defects)
    assert any("nsp_random" in d for d in defects)


def test_validate_catches_broken_rows(tmp_path):
    bad = [([101, 2023, 102, 2003, 2003], 3, [0], [2023], 0)]  # no final [SEP], mask on [CLS]
    write_build(tmp_path, {"train": instances(bad)}, BuildConfig(zstd_level=3), vocab_name="vocab.txt",
                vocab_bytes=b"[PAD]\n", tokenizer=TOKENIZER)  # fmt: skip
    defects = " | ".join(validate_build(tmp_path)["defects"])
    assert "[SEP] not exactly after A and at the end" in defects
    assert "masked position on [CLS]/[SEP]" in defects


def test_manifest_version_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(ManifestError, match="version 2"):
        load_manifest(tmp_path)


def test_hugging_face_finds_both_splits_by_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    write_build(tmp_path, {"train": instances(ROWS), "validation": instances(ROWS[:1])}, BuildConfig(zstd_level=3),
                vocab_name="vocab.txt", vocab_bytes=b"[PAD]\n", tokenizer=TOKENIZER)  # fmt: skip
    ds = datasets.load_dataset("arrow", data_dir=str(tmp_path / "shards"))
    assert {name: d.num_rows for name, d in ds.items()} == {"train": 3, "validation": 1}


def test_shards_load_with_hugging_face_datasets(small_build):
    datasets = pytest.importorskip("datasets")
    m = load_manifest(small_build)
    ds = datasets.load_dataset("arrow", data_files=[str(small_build / e["path"]) for e in m["shards"]], split="train")
    assert ds.num_rows == 3 and set(ds.column_names) == set(
        open_shard(small_build / m["shards"][0]["path"]).schema.names
    )


def test_cut_into_shards_orders_rows_by_bin_then_key_in_equal_parts():
    rng = np.random.default_rng(3)
    n = 500
    lengths = rng.integers(3, 129, n)
    rows = [(rng.integers(5, 30000, k).tolist(), 2, [1], [int(rng.integers(5, 30000))], 0) for k in lengths]
    inst = instances(rows)
    inst.order_key = rng.integers(0, 40, n).astype(np.uint64)  # many ties: they keep row order
    cfg = BuildConfig(rows_per_shard=23)
    shards = cut_into_shards(inst, "train", cfg)
    # reference: rows sorted by key (stably), each length bin cut into equal contiguous parts
    by_key = np.argsort(inst.order_key, kind="stable")
    bins = (lengths - 1) // cfg.length_bin_width
    expected = []
    for b in np.unique(bins):
        members = by_key[bins[by_key] == b]
        count = -(-len(members) // cfg.rows_per_shard)
        edges = [len(members) * i // count for i in range(count + 1)]
        expected += [(b, i, count, members[edges[i] : edges[i + 1]]) for i in range(count)]
    assert len(shards) == len(expected)
    for shard, (b, i, count, members) in zip(shards, expected):
        lo, hi = cfg.bin_range(int(b))
        assert shard.path == shard_path("train", lo, hi, 0, 1, i, count)
        assert shard.rows.input_ids.tolist() == [t for m in members for t in rows[m][0]]
        assert shard.rows.masked_labels.tolist() == [rows[m][3][0] for m in members]
    assert cut_into_shards(inst.take(np.zeros(0, dtype=np.int64)), "train", cfg) == []
