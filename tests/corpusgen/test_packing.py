"""Packed MLM-only rows (corpusgen.packing): layouts, doc_starts, dupe copies, and the validator's checks."""

from collections import Counter

import numpy as np
import pytest

from corpusgen.config import BuildConfig, default_bin_width
from corpusgen.packing import PACKED_ROWS, PACKED_ROWS_FULL, PACKED_SEGMENTS, create_packed_instances, pack_pool
from corpusgen.pairing import TokenizedDocument
from corpusgen.shards import NSP_IGNORE, Instances, open_shard, write_build
from corpusgen.timing import StageTimer
from corpusgen.validate import validate_build

SEP = 102


def doc(key: str, *sentence_lengths: int, base: int = 1000) -> TokenizedDocument:
    n = sum(sentence_lengths)
    return TokenizedDocument(key, np.arange(base, base + n, dtype=np.int64), np.cumsum([0, *sentence_lengths]))


def rows_of(builder):
    return [(p.tokens_a.tolist(), starts) for p, starts in zip(builder.rows, builder.starts, strict=True)]


def test_full_sentences_fill_rows_across_documents_with_a_sep_between():
    pool = [doc("a", 3, 1, base=10), doc("b", 2, base=20), doc("c", 4, 4, base=30)]
    cfg = BuildConfig(next_sentence="full-sentences", max_seq_length=8, max_predictions_per_seq=1)
    [(rows, _)] = pack_pool(pool, cfg, 0, SEP)
    # [CLS] + content + [SEP] = 8: a's 4 tokens, [SEP], b's first token; b's second, [SEP], c's first 4
    assert rows_of(rows) == [
        ([10, 11, 12, 13, SEP, 20], [0, 6]),
        ([21, SEP, 30, 31, 32, 33], [0, 3]),
        ([34, 35, 36, 37], [0]),
    ]
    assert all(p.tokens_b is None and p.label == NSP_IGNORE for p in rows.rows)


def test_a_row_ends_one_short_when_a_document_leaves_a_single_position():
    pool = [doc("a", 5, base=10), doc("b", 3, base=20)]
    [(rows, _)] = pack_pool(
        pool, BuildConfig(next_sentence="full-sentences", max_seq_length=8, max_predictions_per_seq=1), 0, SEP
    )
    # a: [CLS] 5 tokens [SEP] = 7; one position left cannot hold a token and its [SEP]
    assert rows_of(rows) == [([10, 11, 12, 13, 14], [0]), ([20, 21, 22], [0])]


def test_doc_sentences_never_cross_a_document():
    pool = [doc("a", 4, 5, base=10), doc("b", 2, base=40)]
    cfg = BuildConfig(next_sentence="doc-sentences", max_seq_length=6, max_predictions_per_seq=1)
    streams = pack_pool(pool, cfg, 0, SEP)
    assert [rows_of(r) for r, _ in streams] == [
        [([10, 11, 12, 13], [0]), ([14, 15, 16, 17], [0]), ([18], [0])],
        [([40, 41], [0])],
    ]


@pytest.mark.parametrize("layout", ["full-sentences", "doc-sentences"])
def test_every_token_once_in_order_and_copies_differ(layout):
    rng = np.random.default_rng(3)
    pool = [
        doc(f"{i:02d}", *rng.integers(1, 40, size=rng.integers(1, 8)).tolist(), base=1000 * (i + 1)) for i in range(12)
    ]
    cfg = BuildConfig(next_sentence=layout, max_seq_length=64, dupe_factor=3)
    layouts = []
    for dupe in range(3):
        streams = pack_pool(pool, cfg, dupe, SEP)
        content = []
        for rows, _ in streams:
            for pair, starts in zip(rows.rows, rows.starts, strict=True):
                length = len(pair.tokens_a) + 2
                assert length <= 64 and starts[0] == 0 and starts == sorted(set(starts))
                assert (pair.tokens_a == SEP).sum() == len(starts) - 1
                content += [t for t in pair.tokens_a.tolist() if t != SEP]
        if layout == "full-sentences":  # one stream; copy 0 in key order, the rest shuffled, all rows full but the last
            [(rows, _)] = streams
            assert all(len(p.tokens_a) + 2 >= 63 for p in rows.rows[:-1])
            docs_in_order = [t // 1000 - 1 for t in content]  # each document whole, in its order, once
            firsts = [d for i, d in enumerate(docs_in_order) if i == 0 or d != docs_in_order[i - 1]]
            assert sorted(firsts) == list(range(12))
            assert content == [t for d in firsts for t in pool[d].ids.tolist()]
            assert (firsts == list(range(12))) == (dupe == 0)
        else:
            assert content == [t for d in pool for t in d.ids.tolist()]
        layouts.append([p.tokens_a.tolist() for rows, _ in streams for p in rows.rows])
    assert layouts[0] != layouts[1] and layouts[0] != layouts[2] and layouts[1] != layouts[2]


def test_same_seed_same_rows_other_seed_other_rows():
    pool = [doc(f"{i}", 30, 20, base=100 * i) for i in range(6)]
    cfg = BuildConfig(next_sentence="full-sentences", max_seq_length=32)
    a = rows_of(pack_pool(pool, cfg, 1, SEP)[0][0])
    assert a == rows_of(pack_pool(pool, cfg, 1, SEP)[0][0])
    assert a != rows_of(pack_pool(pool, cfg.replace(random_seed=7), 1, SEP)[0][0])


def test_packed_instances_carry_doc_starts_and_counts(wordpiece):
    from corpusgen.masking import VocabTables

    tables = VocabTables.from_tokenizer(wordpiece)
    pool = [doc(f"{i}", 25, 30, base=2000 + 100 * i) for i in range(8)]
    cfg = BuildConfig(next_sentence="full-sentences", max_seq_length=48, dupe_factor=2)
    counts = Counter()
    inst = Instances.concat(create_packed_instances(pool, cfg, tables, counts, StageTimer()))
    assert counts[PACKED_ROWS] == len(inst) == len(inst.num_doc_starts)
    assert counts[PACKED_SEGMENTS] == int(inst.num_doc_starts.sum()) == len(inst.doc_starts)
    assert counts[PACKED_ROWS_FULL] == int((inst.lengths >= 47).sum()) >= len(inst) - 2
    assert (inst.a_len == inst.lengths).all() and (inst.next_sentence_label == NSP_IGNORE).all()
    assert counts["tokens_covered"] == counts["tokens_placed_own"] == 2 * 8 * 55
    assert inst.doc_starts.dtype == np.uint8


def test_config_bounds_and_bins():
    assert BuildConfig(next_sentence="full-sentences", max_seq_length=8192).max_num_tokens == 8190
    with pytest.raises(ValueError, match=r"max_seq_length must be in \[3, 8192\]"):
        BuildConfig(next_sentence="doc-sentences", max_seq_length=8193)
    assert [default_bin_width(n) for n in (128, 512, 1024, 8192)] == [16, 16, 32, 256]
    assert [default_bin_width(n, packed=True) for n in (128, 512, 1024, 8192)] == [8, 8, 16, 128]
    assert BuildConfig().length_bin_width == 16
    assert BuildConfig(next_sentence="full-sentences").length_bin_width == 8
    assert BuildConfig().replace(max_seq_length=2048).length_bin_width == 64  # followed: follows again
    assert BuildConfig(length_bin_width=16).replace(next_sentence="doc-sentences").length_bin_width == 8
    assert BuildConfig(length_bin_width=4).replace(max_seq_length=2048).length_bin_width == 4  # given: kept
    assert BuildConfig(next_sentence="doc-sentences").packed and not BuildConfig(next_sentence="none").packed


# --- the validator ---------------------------------------------------------------------------------

TOKENIZER = {"type": "wordpiece", "vocab_size": 200, "pad_id": 0, "unk_id": 1, "cls_id": 2, "sep_id": 3, "mask_id": 4}


def packed_build(tmp_path, rows: list[tuple[list[int], list[int]]], layout="full-sentences", max_seq_length=8):
    """A build of hand-made packed rows (unmasked: one prediction each at position 1)."""
    cfg = BuildConfig(next_sentence=layout, max_seq_length=max_seq_length, max_predictions_per_seq=1, dupe_factor=1)
    ids = [np.array(r, dtype=np.uint16) for r, _ in rows]
    inst = Instances(
        input_ids=np.concatenate(ids),
        lengths=np.array([len(r) for r in ids]),
        a_len=np.array([len(r) for r in ids], dtype=np.uint16),
        masked_positions=np.ones(len(rows), dtype=np.uint8),
        num_masked=np.ones(len(rows), dtype=np.int32),
        masked_labels=np.array([r[1] for r in ids], dtype=np.uint16),
        next_sentence_label=np.full(len(rows), NSP_IGNORE, dtype=np.int8),
        order_key=np.arange(len(rows), dtype=np.uint64),
        doc_starts=np.array([s for _, st in rows for s in st], dtype=np.uint8),
        num_doc_starts=np.array([len(st) for _, st in rows], dtype=np.int32),
    )
    counts = {PACKED_ROWS: len(rows), PACKED_SEGMENTS: int(inst.num_doc_starts.sum())}
    counts[PACKED_ROWS_FULL] = int((inst.lengths >= max_seq_length - 1).sum())
    write_build(tmp_path, {"train": inst}, cfg, vocab_name="vocab.txt", vocab_bytes=b"x", tokenizer=TOKENIZER,
                counters=counts)  # fmt: skip
    return tmp_path


def test_a_good_packed_build_validates_and_has_the_column(tmp_path):
    build = packed_build(tmp_path, [([2, 10, 11, 3, 20, 21, 22, 3], [0, 4]), ([2, 30, 31, 32, 33, 34, 35, 3], [0])])
    report = validate_build(build)
    assert report["ok"], report["defects"]
    assert report["checked"]["padding_share_at_most"] == 0.0
    shard = next((build / "shards").rglob("*.arrow"))
    assert open_shard(shard).read_all().column("doc_starts").to_pylist() == [[0, 4], [0]]


@pytest.mark.parametrize(
    "rows, layout, defect",
    [
        ([([2, 10, 11, 3, 20, 21, 22, 3], [1, 4])], "full-sentences", "doc_starts do not begin at 0"),
        ([([2, 10, 11, 3, 20, 21, 22, 3], [0, 5])], "full-sentences", "[SEP] not exactly at each document piece's end"),
        ([([2, 10, 11, 3, 20, 21, 22, 3], [0, 7])], "full-sentences", "doc_starts not ascending"),
        ([([2, 10, 11, 3, 20, 21, 22, 3], [0, 4])], "doc-sentences", "more than one document in a doc-sentences row"),
        (
            [([2, 10, 3], [0]), ([2, 11, 3], [0])],
            "full-sentences",
            "full-sentences rows shorter than max_seq_length - 1",
        ),
    ],
)
def test_the_validator_finds_broken_packed_rows(tmp_path, rows, layout, defect):
    report = validate_build(packed_build(tmp_path, rows, layout))
    assert not report["ok"]
    assert any(defect in d for d in report["defects"]), report["defects"]


def test_the_command_line_builds_inspects_and_validates_packed_rows(tmp_path):
    from tests.corpusgen.test_cli import run

    src = tmp_path / "in.txt"
    src.write_text("One sentence is here. Another one is there.\n\nA second document. It has two sentences.\n")
    out = str(tmp_path / "o")
    code, text = run("build", str(src), "-o", out, "--dupe-factor", "1", "--next-sentence", "full-sentences",
                     "--heldout-fraction", "0")  # fmt: skip
    assert code == 0, text
    code, text = run("inspect", out, "-n", "1")
    assert code == 0, text
    lines = text.splitlines()
    assert (
        lines[1]
        == "packed (full-sentences): 1 rows, 0 full, 2 document pieces, fill 0.171875, padding share at most 0.083333"
    )
    assert lines[3].startswith("#0  len 22  doc_starts [0, ")
    assert lines[4].startswith("  D1: [CLS] ") and lines[5].startswith("  D2: ") and lines[5].endswith("[SEP]")
    code, text = run("validate", out)
    assert code == 0 and text.splitlines()[-1] == "OK", text
    assert "padding share at most 0.083333 (rows padded to their length bin's top)" in text  # 22 of 24


def test_a_doc_sentences_copy_opens_with_a_row_the_loader_pads_nothing_to():
    from corpusgen.packing import first_row_tokens

    rng = np.random.default_rng(0)
    draws = [first_row_tokens(126, rng) for _ in range(200)]
    assert set(draws) == set(range(6, 127, 8))  # rows of 8, 16, ..., 128 with [CLS] and [SEP]
    assert {first_row_tokens(4, rng) for _ in range(50)} == {1, 2, 3, 4}  # none aligned fits: any


def test_doc_sentences_copies_at_the_shortest_length_lay_out_one_token_a_row():
    """At max_seq_length 3 a row holds one token: a copy has no shorter first row to start with."""
    cfg = BuildConfig(next_sentence="doc-sentences", max_seq_length=3, max_predictions_per_seq=1, dupe_factor=2)
    for dupe in (0, 1):
        [(rows, _)] = pack_pool([doc("a", 2, 1, base=10)], cfg, dupe, SEP)
        assert rows_of(rows) == [([10], [0]), ([11], [0]), ([12], [0])]
