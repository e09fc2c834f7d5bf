"""corpusgen.stats: the manifest's ``stats`` section from a known set of summed counters."""

from __future__ import annotations

from collections import Counter

import pytest

from corpusgen import quality, stats

COUNTERS = {
    "files_read": 3,
    "documents_read": 10,
    "documents_cleaned": 9,
    "documents_unique": 8,
    "documents_kept": 6,
    "documents_validation": 1,
    "sentences_read": 50,
    "sentences_kept": 40,
    "sentences_without_tokens": 2,
    "long_sentences_cut": 1,
    "sentences_reused": 3,
    "tokens_read": 1000,
    "tokens_kept": 900,
    "tokens_in_dropped_documents": 100,
    "unk_tokens": 5,
    "special_tokens_in_text": 2,
    "tokens_covered": 880,
    "tokens_truncated_away": 20,
    "tokens_placed_own": 850,
    "tokens_borrowed": 30,
    "instance_tokens": 960,
    # drops: zero counts are left out of the report, quality reasons come after the others, sorted
    "quality_too_short": 2,
    "near_duplicate_document": 1,
    "quality_bullet_lines": 1,
    "duplicate_document": 1,
    "empty_file": 1,
    "binary_file": 0,
    "quality_lorem_ipsum": 0,
    "legacy_encoding_files": 1,
    "html_documents": 2,
    "mojibake_fixed_documents": 1,
    "boilerplate_lines_removed": 7,
    "wikitext_heading_lines": 4,
    "instances": 12,
    "instances_train": 11,
    "instances_validation": 1,
    "short_target_instances": 1,
    "nsp_next": 5,
    "nsp_random": 7,
    "pools": 3,
    "pool_documents": 7,
    "mask_candidates": 900,
    "masked_mask": 108,
    "masked_random": 14,
    "masked_kept": 13,
    "length_128": 5,
    "length_9": 2,
    "length_64": 2,
    "length_10": 3,
}


def test_summarize_a_known_counter_set():
    assert stats.summarize(COUNTERS) == {
        "files": {"read": 3, "dropped": 1, "skipped": 0},
        "records": {"read": 0, "dropped": 0},
        "documents": {"read": 10, "cleaned": 9, "unique": 8, "kept": 6, "validation": 1},
        "sentences": {"read": 50, "kept": 40, "without_tokens": 2, "long_cut": 1, "reused_as_context": 3},
        "tokens": {
            "read": 1000,
            "kept": 900,
            "in_dropped_documents": 100,
            "unk": 5,
            "special_in_text": 2,
            "covered": 880,
            "truncated_away": 20,
            "placed_own": 850,
            "borrowed": 30,
            "in_instances": 960,
        },
        "drops": {
            "empty_file": 1,
            "duplicate_document": 1,
            "near_duplicate_document": 1,
            "quality_bullet_lines": 1,
            "quality_too_short": 2,
        },
        "cleaning": {
            "legacy_encoding_files": 1,
            "html_documents": 2,
            "mojibake_fixed_documents": 1,
            "boilerplate_lines_removed": 7,
        },
        "other": {"wikitext_heading_lines": 4, "nsp_no_other_document": 0},
        "instances": 12,
        "instances_by_split": {"train": 11, "validation": 1},
        "short_target_instances": 1,
        "nsp": {"next": 5, "random": 7, "random_share": 0.583333, "pools": 3, "pool_documents_mean": 2.3},
        "masking": {
            "candidates": 900,
            "masked": 135,
            "masked_share": 0.15,
            "mask": 108,
            "random": 14,
            "kept": 13,
            "mask_share": 0.8,
            "random_share": 0.103704,
            "kept_share": 0.096296,
        },
        "length_histogram": {"9": 2, "10": 3, "64": 2, "128": 5},
    }


def test_orders_a_reader_sees():
    summary = stats.summarize(Counter(COUNTERS))
    # drop reasons in the order of stats.DROP_REASONS, then the quality reasons by name
    assert list(summary["drops"]) == [
        "empty_file",
        "duplicate_document",
        "near_duplicate_document",
        "quality_bullet_lines",
        "quality_too_short",
    ]
    # lengths in numeric order, not string order ("10" < "9")
    assert list(summary["length_histogram"]) == ["9", "10", "64", "128"]


def test_summarize_no_counters():
    summary = stats.summarize({})
    assert summary["drops"] == {} and summary["length_histogram"] == {}
    assert summary["nsp"] == {"next": 0, "random": 0, "random_share": None, "pools": 0, "pool_documents_mean": None}
    assert summary["masking"] == {
        "candidates": 0,
        "masked": 0,
        "masked_share": None,
        "mask": 0,
        "random": 0,
        "kept": 0,
        "mask_share": None,
        "random_share": None,
        "kept_share": None,
    }
    assert summary["documents"] == {"read": 0, "cleaned": 0, "unique": 0, "kept": 0, "validation": 0}
    assert summary["files"] == {"read": 0, "dropped": 0, "skipped": 0}
    assert summary["records"] == {"read": 0, "dropped": 0}


def test_counter_names():
    assert stats.length_counter(128) == "length_128"
    assert stats.summarize({stats.length_counter(7): 4})["length_histogram"] == {"7": 4}
    assert stats.summarize({stats.QUALITY_PREFIX + "too_short": 1})["drops"] == {"quality_too_short": 1}
    assert len(set(stats.DROP_REASONS)) == len(stats.DROP_REASONS)
    assert stats.NEAR_DUPLICATE_DOCUMENT in stats.DROP_REASONS


@pytest.mark.parametrize(
    "n, p, halfwidth",
    [(10_000, 0.5, 0.02), (400, 0.1, 0.06), (0, 0.5, 2.0), (1, 0.5, 2.0)],
)
def test_binomial_halfwidth_is_four_standard_errors(n, p, halfwidth):
    assert stats.binomial_halfwidth(n, p) == pytest.approx(halfwidth, rel=1e-12)
    assert stats.binomial_halfwidth(n, p, z=2.0) == pytest.approx(halfwidth / 2, rel=1e-12)


def test_every_quality_reason_is_reported_under_its_prefixed_name():
    exported = {getattr(quality, n) for n in quality.__all__ if n.isupper() and isinstance(getattr(quality, n), str)}
    assert set(quality.DROP_REASONS) == exported and len(quality.DROP_REASONS) == len(exported)
    counters = {stats.QUALITY_PREFIX + reason: 1 for reason in quality.DROP_REASONS}
    assert stats.summarize(counters)["drops"] == {f"quality_{r}": 1 for r in sorted(quality.DROP_REASONS)}


def test_records_and_files_in_the_funnel():
    counts = {
        stats.FILES_READ: 3,
        stats.RECORDS_READ: 7,
        stats.DOCUMENTS_READ: 3,
        stats.NON_STRING_TEXT: 3,
        stats.MALFORMED_JSON: 1,
        stats.TRUNCATED_FILE: 1,
        stats.HIDDEN_FILE: 2,
        stats.DUPLICATE_DOCUMENT: 1,
        "documents_kept": 2,
        "quality_too_short": 0,
    }
    s = stats.summarize(counts)
    assert s["files"] == {"read": 3, "dropped": 1, "skipped": 2}
    assert s["records"] == {"read": 7, "dropped": 4}
    assert s["documents"]["read"] == 3 and s["documents"]["kept"] == 2
    assert s["drops"] == {
        stats.TRUNCATED_FILE: 1,
        stats.HIDDEN_FILE: 2,
        stats.MALFORMED_JSON: 1,
        stats.NON_STRING_TEXT: 3,
        stats.DUPLICATE_DOCUMENT: 1,
    }
    assert stats.input_summary(s) == (
        "files: 3 read (1 dropped in whole or part), 2 skipped; records: 7 read, 4 dropped; documents: 3 read, 2 kept"
    )


def test_reason_groups_partition_the_reasons():
    groups = (stats.FILE_DROPS, stats.RECORD_DROPS, stats.DOCUMENT_DROPS)
    assert sum(len(g) for g in groups) == len(set().union(*groups)) == len(stats.DROP_REASONS)
