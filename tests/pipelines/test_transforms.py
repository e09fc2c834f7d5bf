"""Each PTransform on a TestPipeline with exact expectations."""

import gzip
import json

import apache_beam as beam
import numpy as np
import zstandard
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpusgen import readers, stats
from corpusgen.clean import content_key
from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables
from corpusgen.pairing import TokenizedDocument
from pipelines.transforms import STATS, CleanDocuments, CreateInstances, MergeCounts, ReadDocuments, SplitAndTokenize


def local_pipeline():
    return BeamTestPipeline(runner="FnApiRunner", blocking=True)


def total(pcoll_of_counts, label):
    return pcoll_of_counts | label >> beam.CombineGlobally(MergeCounts())


def test_read_documents_all_formats_and_compressions(tmp_path):
    (tmp_path / "a.txt").write_text("A one.\nA two.\n\nB one.\n")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "C one."}\n{broken\n'))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "D one."}\n{"other": 1}\n'))
    (tmp_path / "d.bin").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "e.txt").write_bytes(b"")
    files = sorted(str(p) for p in tmp_path.iterdir())
    with local_pipeline() as p:
        out = p | beam.Create(files) | ReadDocuments(BuildConfig())
        assert_that(out.docs, equal_to(["A one.\nA two.", "B one.", "C one.", "D one."]), label="docs")
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


def test_clean_documents_dedups_exactly():
    texts = ["Hello  world.", "hello world.", "Other text.", "   ", "Third."]
    with local_pipeline() as p:
        docs, counts, _ = p | beam.Create(texts) | CleanDocuments(BuildConfig())
        assert_that(
            docs,
            equal_to(
                [
                    (content_key("Hello world."), "Hello world."),
                    (content_key("Other text."), "Other text."),
                    (content_key("Third."), "Third."),
                ]
            ),
            label="docs",
        )
        assert_that(
            total(counts, "sum"),
            equal_to(
                [{"documents_cleaned": 4, "documents_unique": 3, stats.DUPLICATE_DOCUMENT: 1, stats.EMPTY_DOCUMENT: 1}]
            ),
            label="stats",
        )


def test_split_and_tokenize(vocab_file):
    docs = [
        ("k1", "The cat sat on the mat. It was happy."),
        ("k2", "One sentence only."),
        ("k3", "..."),
    ]
    with local_pipeline() as p:
        out = p | beam.Create(docs) | SplitAndTokenize(BuildConfig(heldout_fraction=0.0), vocab_file)
        got = out.docs | beam.Map(lambda kv: (kv[0], kv[1].key, kv[1].ids.tolist(), kv[1].bounds.tolist()))
        assert_that(
            got,
            equal_to(
                [("train", "k1", [1996, 4937, 2938, 2006, 1996, 13523, 1012, 2009, 2001, 3407, 1012], [0, 7, 11])]
            ),
            label="docs",
        )
        assert_that(
            total(out[STATS], "sum"),
            equal_to(
                [
                    {
                        "sentences_read": 4,
                        "tokens_read": 18,
                        "tokens_kept": 11,
                        "documents_kept": 1,
                        "documents_heldout": 0,
                        "sentences_kept": 2,
                        stats.SINGLE_SENTENCE: 2,
                        "tokens_in_dropped_documents": 7,
                    }
                ]
            ),
            label="stats",
        )


def test_create_instances_bins_and_counts(wordpiece):
    rng = np.random.default_rng(0)
    docs = []
    for k in range(30):
        lens = rng.integers(3, 30, size=8)
        ids = rng.integers(1996, 29611, size=int(lens.sum())).astype(np.uint16)
        docs.append(("train", TokenizedDocument(f"{k:032x}", ids, np.concatenate(([0], np.cumsum(lens))))))
    cfg = BuildConfig(dupe_factor=2)

    def check(chunks):
        seen = 0
        for (split, b), inst in chunks:
            assert split == "train"
            assert np.all((inst.lengths - 1) // cfg.length_bin_width == b)
            seen += len(inst)
        assert seen > 0

    with local_pipeline() as p:
        out = p | beam.Create(docs) | CreateInstances(cfg, VocabTables.from_wordpiece(wordpiece))
        assert_that(out.instances | beam.combiners.ToList(), lambda lists: [check(x) for x in lists], label="bins")
        summed = total(out[STATS], "sum")

        def check_stats(items):
            (c,) = items
            assert c["pools"] == 1 and c["pool_documents"] == 30
            assert c["instances"] == c["instances_train"] == c["nsp_next"] + c["nsp_random"]
            assert c["tokens_covered"] + c["tokens_truncated_away"] == 2 * sum(int(d.n_tokens) for _, d in docs)
            specials = 3 * c["instances"]
            assert c["instance_tokens"] == specials + c["tokens_placed_own"] + c["tokens_borrowed"]

        assert_that(summed, check_stats, label="stats")


def test_merge_counts():
    fn = MergeCounts()
    acc = fn.merge_accumulators(
        [fn.add_input(fn.create_accumulator(), {"a": 1}), fn.add_input(fn.create_accumulator(), {"a": 2, "b": 1})]
    )
    assert fn.extract_output(acc) == {"a": 3, "b": 1}
    assert json.dumps(fn.extract_output(fn.create_accumulator())) == "{}"
