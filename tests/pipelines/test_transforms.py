"""Each PTransform on a TestPipeline with exact expectations."""

import gzip
import json

import apache_beam as beam
import numpy as np
import pytest
import zstandard
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpusgen import intermediate, readers, stats
from corpusgen.clean import content_key
from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables
from corpusgen.pairing import TokenizedDocument
from corpusgen.partition import pool_hash
from corpusgen.shards import read_shard
from pipelines.transforms import (
    MAIN,
    REMOVED,
    STATS,
    CreateShards,
    MergeCounts,
    ReadDocuments,
    StagedVocab,
    TokenizeChunks,
    read_file,
)


def local_pipeline():
    return BeamTestPipeline(runner="FnApiRunner", blocking=True)


def total(pcoll_of_counts, label):
    return pcoll_of_counts | label >> beam.CombineGlobally(MergeCounts())


def chunk_texts(chunks):
    return [
        t for c in sorted(chunks, key=lambda c: c["chunk"]) for t in intermediate.decode_chunk(read_file(c["path"]))[1]
    ]


def test_read_documents_all_formats_and_compressions(tmp_path):
    (tmp_path / "a.txt").write_text("A one.\nA two.\n\nB one.\n")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "C one."}\n{broken\n'))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "D one."}\n{"other": 1}\n'))
    (tmp_path / "d.bin").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "e.txt").write_bytes(b"")
    files = list(enumerate(sorted(str(p) for p in tmp_path.iterdir())))
    work = tmp_path / "work"
    with local_pipeline() as p:
        out = p | beam.Create(files) | ReadDocuments(BuildConfig(), str(work), chunk_chars=1 << 20)
        assert_that(
            out[MAIN] | beam.combiners.ToList() | beam.Map(chunk_texts),
            equal_to([["A one.\nA two.", "B one.", "C one.", "D one."]]),
            label="docs",
        )
        assert_that(
            total(out[STATS], "sum"),
            equal_to(
                [
                    {
                        "files_read": 5,
                        "records_read": 6,
                        "documents_read": 4,
                        readers.MALFORMED_JSON: 1,
                        readers.MISSING_TEXT_FIELD: 1,
                        readers.BINARY_FILE: 1,
                        readers.EMPTY_FILE: 1,
                    }
                ]
            ),
            label="stats",
        )


def test_read_documents_cuts_large_files_into_chunks_with_stable_locators(tmp_path):
    (tmp_path / "a.txt").write_text("".join(f"Document {i} is here.\n\n" for i in range(10)))
    with local_pipeline() as p:
        out = p | beam.Create([(3, str(tmp_path / "a.txt"))]) | ReadDocuments(BuildConfig(), str(tmp_path / "w"), 50)

        def check(chunks):
            chunks = sorted(chunks, key=lambda c: c["chunk"])
            assert [c["documents"] for c in chunks] == [3, 3, 3, 1]  # 20 characters a document, 50 a chunk
            locs = [loc for c in chunks for loc in intermediate.decode_chunk(read_file(c["path"]))[0]]
            assert locs == [intermediate.locator(3, i) for i in range(10)]

        assert_that(out[MAIN] | beam.combiners.ToList(), lambda lists: [check(x) for x in lists])


def test_tokenize_chunks_cleans_splits_and_counts(tmp_path, vocab_file):
    texts = ["The cat  sat on the mat. It was happy.", "One sentence only.", "...", "   "]
    path = tmp_path / "c.arrow"
    path.write_bytes(intermediate.encode_chunk(list(range(4)), texts))
    with local_pipeline() as p:
        out = (
            p
            | beam.Create([{"chunk": "000000-00000", "path": str(path), "documents": 4}])
            | TokenizeChunks(
                BuildConfig(heldout_fraction=0.0),
                StagedVocab.written(vocab_file, str(tmp_path / "w")),
                str(tmp_path / "w"),
            )
        )

        def check(files):
            (tf,) = files
            assert tf["tokens"] == {"train": 11, "validation": 0}
            docs = intermediate.decode_pool_documents(read_file(tf["path"]), [0], 0, 2**64)
            assert [(d.doc.key, d.doc.ids.tolist(), d.doc.bounds.tolist(), d.locator) for d in docs] == [
                (
                    content_key("The cat sat on the mat. It was happy."),
                    [1996, 4937, 2938, 2006, 1996, 13523, 1012, 2009, 2001, 3407, 1012],
                    [0, 7, 11],
                    0,
                )
            ]

        assert_that(out[MAIN] | beam.combiners.ToList(), lambda lists: [check(x) for x in lists], label="docs")
        assert_that(
            total(out[STATS], "sum"),
            equal_to(
                [
                    {
                        "documents_cleaned": 3,
                        stats.EMPTY_DOCUMENT: 1,
                        "sentences_read": 4,
                        "tokens_read": 18,
                        stats.SINGLE_SENTENCE: 2,
                        "tokens_in_dropped_documents": 7,
                    }
                ]
            ),
            label="stats",
        )


def token_file(tmp_path, docs, name="t.arrow", with_text=False):
    cfg = BuildConfig()
    rows = [
        ("train", pool_hash(d.key, cfg), loc, d, f"text of {d.key}" if with_text else None)
        for loc, d in enumerate(docs)
    ]
    data, index = intermediate.encode_tokens(rows, np.dtype(np.uint16), with_text)
    (tmp_path / name).write_bytes(data)
    return {"path": str(tmp_path / name), "index": index, "tokens": {"train": sum(d.n_tokens for d in docs)}}


def random_documents(n: int, seed: int) -> list[TokenizedDocument]:
    """``n`` documents of 8 sentences of 3-29 ordinary word pieces each."""
    rng = np.random.default_rng(seed)
    docs = []
    for k in range(n):
        lens = rng.integers(3, 30, size=8)
        ids = rng.integers(1996, 29611, size=int(lens.sum())).astype(np.uint16)
        docs.append(TokenizedDocument(f"{k:032x}", ids, np.concatenate(([0], np.cumsum(lens)))))
    return docs


@pytest.mark.parametrize("min_tasks", [1, 100])  # whole pools, one copy a task
def test_create_shards_bins_dedup_and_counts(tmp_path, wordpiece, min_tasks):
    docs = random_documents(30, seed=0)
    files = [token_file(tmp_path, docs), token_file(tmp_path, docs[:2], "copies.arrow")]  # two exact duplicates
    cfg = BuildConfig(dupe_factor=2)
    out_dir = tmp_path / "out"

    with local_pipeline() as p:
        near = p | "near" >> beam.Create([docs[5].key])
        out = (p | beam.Create(files), near) | CreateShards(
            cfg, VocabTables.from_tokenizer(wordpiece), str(out_dir), min_tasks
        )

        def check(entries):
            assert entries and all(e["split"] == "train" for e in entries)
            for e in entries:
                lengths = np.diff(read_shard(out_dir / e["path"]).column("input_ids").combine_chunks().offsets)
                assert np.all((lengths >= e["bin"][0]) & (lengths <= e["bin"][1]))

        assert_that(out[MAIN] | beam.combiners.ToList(), lambda lists: [check(x) for x in lists], label="bins")

        def check_stats(items):
            (c,) = items
            assert c[stats.DUPLICATE_DOCUMENT] == 2 and c[stats.NEAR_DUPLICATE_DOCUMENT] == 1
            assert c["pools"] == 1 and c["pool_documents"] == c["documents_kept"] == 29
            kept_tokens = sum(d.n_tokens for i, d in enumerate(docs) if i != 5)
            assert c["tokens_kept"] == kept_tokens
            assert c["instances"] == c["instances_train"] == c["nsp_next"] + c["nsp_random"]
            assert c["tokens_covered"] + c["tokens_truncated_away"] == 2 * kept_tokens
            assert c["instance_tokens"] == 3 * c["instances"] + c["tokens_placed_own"] + c["tokens_borrowed"]

        assert_that(total(out[STATS], "sum"), check_stats, label="stats")


def test_merge_counts():
    fn = MergeCounts()
    acc = fn.merge_accumulators(
        [fn.add_input(fn.create_accumulator(), {"a": 1}), fn.add_input(fn.create_accumulator(), {"a": 2, "b": 1})]
    )
    assert fn.extract_output(acc) == {"a": 3, "b": 1}
    assert json.dumps(fn.extract_output(fn.create_accumulator())) == "{}"


def test_token_files_carry_word_starts_when_the_documents_do(tmp_path):
    rng = np.random.default_rng(5)
    docs = []
    for k in range(600):  # more than one record batch
        ids = rng.integers(5, 2000, size=int(rng.integers(1, 50))).astype(np.uint16)
        docs.append(
            TokenizedDocument(f"{k:032x}", ids, np.array([0, len(ids)]), word_starts=rng.random(len(ids)) < 0.6)
        )
    for carried in (True, False):
        if not carried:
            for d in docs:
                d.word_starts = None
        tf = token_file(tmp_path, docs, f"{carried}.arrow")
        back = intermediate.decode_pool_documents(read_file(tf["path"]), range(len(tf["index"])), 0, 2**64)
        assert len(back) == len(docs)
        by_key = {d.key: d for d in docs}
        for p in back:
            want = by_key[p.doc.key]
            assert np.array_equal(p.doc.ids, want.ids)
            if carried:
                assert p.doc.word_starts.dtype == bool and np.array_equal(p.doc.word_starts, want.word_starts)
            else:
                assert p.doc.word_starts is None


def test_tasks_of_one_copy_and_of_whole_pools_write_the_same_shards_and_counts(tmp_path, wordpiece):
    docs = random_documents(120, seed=1)
    files = [token_file(tmp_path, docs[:70], "a.arrow", True), token_file(tmp_path, docs[60:], "b.arrow", True)]
    cfg = BuildConfig(dupe_factor=3, nsp_pool_tokens=10_000, rows_per_shard=60, write_removed=True)
    results = {}
    for min_tasks in (1, 100):
        out_dir = tmp_path / f"out{min_tasks}"
        with local_pipeline() as p:
            near = p | "near" >> beam.Create([docs[5].key])
            out = (p | beam.Create(files), near) | CreateShards(
                cfg, VocabTables.from_tokenizer(wordpiece), str(out_dir), min_tasks
            )

            def save(name, value, out_dir=out_dir):  # the DoFns run on copies: hand results over as files
                (out_dir / f"{name}.json").write_text(json.dumps(value, sort_keys=True))

            _ = out[MAIN] | "e" >> beam.combiners.ToList() | "se" >> beam.Map(lambda e: save("entries", e))
            _ = total(out[STATS], "sum") | "sc" >> beam.Map(lambda c: save("counts", c))
            _ = out[REMOVED] | "r" >> beam.combiners.ToList() | "sr" >> beam.Map(lambda r: save("removed", sorted(r)))
        results[min_tasks] = {
            k: json.loads((out_dir / f"{k}.json").read_text()) for k in ("entries", "counts", "removed")
        }
    one, whole = results[100], results[1]
    assert one["counts"]["pools"] == 2 and one["counts"] == whole["counts"]
    assert len(one["removed"]) == 11 and one["removed"] == whole["removed"]  # 10 duplicates, 1 near one
    digests = [{e["path"]: e["sha256"] for e in r["entries"]} for r in (one, whole)]
    assert len(digests[0]) > 4 and digests[0] == digests[1]
