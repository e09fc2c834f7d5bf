"""Build statistics: counter names, and the manifest's ``stats`` section made from them.

Every step counts what it reads, keeps and drops in flat counters (summed across
workers); ``summarize`` arranges them for the manifest. Drop reasons are the
snake_case names below, the same names the tests assert on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from corpusgen import readers

# drop reasons beyond the readers'
EMPTY_DOCUMENT = "empty_document"
DUPLICATE_DOCUMENT = "duplicate_document"
EMPTY_AFTER_TOKENIZATION = "empty_after_tokenization"
SINGLE_SENTENCE = "single_sentence"  # no pair can be cut from one sentence (nsp/sop builds)
NEAR_DUPLICATE_DOCUMENT = "near_duplicate_document"
QUALITY_PREFIX = "quality_"  # quality_<reason> for each rule of corpusgen.quality

DROP_REASONS = (
    readers.BINARY_FILE,
    readers.EMPTY_FILE,
    readers.UNREADABLE_FILE,
    readers.INVALID_UTF8,
    readers.LINE_TOO_LONG,
    readers.MALFORMED_JSON,
    readers.MISSING_TEXT_FIELD,
    readers.NON_STRING_TEXT,
    readers.DOCUMENT_TOO_LONG,
    EMPTY_DOCUMENT,
    readers.UNDECODABLE_FILE,
    DUPLICATE_DOCUMENT,
    NEAR_DUPLICATE_DOCUMENT,
    EMPTY_AFTER_TOKENIZATION,
    SINGLE_SENTENCE,
)
LENGTH_PREFIX = "length_"
# how a position chosen for prediction is shown to the model (counted from the rows)
KIND_MASK, KIND_RANDOM, KIND_KEPT = "masked_mask", "masked_random", "masked_kept"


def length_counter(length: int) -> str:
    return f"{LENGTH_PREFIX}{length}"


def binomial_halfwidth(n: int, p: float, z: float = 4.0) -> float:
    """z standard errors of a share estimated from n Bernoulli(p) draws."""
    return z * math.sqrt(p * (1 - p) / max(1, n))


def _share(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def summarize(c: Mapping[str, int]) -> dict:
    """The manifest's ``stats`` from the summed counters."""
    g = lambda name: int(c.get(name, 0))  # noqa: E731
    masked = g(KIND_MASK) + g(KIND_RANDOM) + g(KIND_KEPT)
    nsp_total = g("nsp_next") + g("nsp_random")
    histogram = {int(k[len(LENGTH_PREFIX) :]): int(v) for k, v in c.items() if k.startswith(LENGTH_PREFIX)}
    return {
        "files": {"read": g("files_read")},
        "documents": {
            "read": g("documents_read"),
            "cleaned": g("documents_cleaned"),
            "unique": g("documents_unique"),
            "kept": g("documents_kept"),
            "validation": g("documents_validation"),
        },
        "sentences": {
            "read": g("sentences_read"),
            "kept": g("sentences_kept"),
            "without_tokens": g("sentences_without_tokens"),
            "long_cut": g("long_sentences_cut"),
            "reused_as_context": g("sentences_reused"),
        },
        "tokens": {
            "read": g("tokens_read"),
            "kept": g("tokens_kept"),
            "in_dropped_documents": g("tokens_in_dropped_documents"),
            "unk": g("unk_tokens"),
            "special_in_text": g("special_tokens_in_text"),
            "covered": g("tokens_covered"),
            "truncated_away": g("tokens_truncated_away"),
            "placed_own": g("tokens_placed_own"),
            "borrowed": g("tokens_borrowed"),
            "in_instances": g("instance_tokens"),
        },
        "drops": {
            **{reason: g(reason) for reason in DROP_REASONS if g(reason)},
            **{k: int(v) for k, v in sorted(c.items()) if k.startswith(QUALITY_PREFIX) and v},
        },
        "cleaning": {
            "legacy_encoding_files": g(readers.LEGACY_ENCODING_FILES),
            "html_documents": g("html_documents"),
            "mojibake_fixed_documents": g("mojibake_fixed_documents"),
            "boilerplate_lines_removed": g("boilerplate_lines_removed"),
        },
        "other": {
            readers.WIKITEXT_HEADING_LINES: g(readers.WIKITEXT_HEADING_LINES),
            "nsp_no_other_document": g("nsp_no_other_document"),
        },
        "instances": g("instances"),
        "instances_by_split": {"train": g("instances_train"), "validation": g("instances_validation")},
        "short_target_instances": g("short_target_instances"),
        "nsp": {
            "next": g("nsp_next"),
            "random": g("nsp_random"),
            "random_share": _share(g("nsp_random"), nsp_total),
            "pools": g("pools"),
            "pool_documents_mean": round(g("pool_documents") / g("pools"), 1) if g("pools") else None,
        },
        "masking": {
            "candidates": g("mask_candidates"),
            "masked": masked,
            "masked_share": _share(masked, g("mask_candidates")),
            "mask": g(KIND_MASK),
            "random": g(KIND_RANDOM),
            "kept": g(KIND_KEPT),
            "mask_share": _share(g(KIND_MASK), masked),
            "random_share": _share(g(KIND_RANDOM), masked),
            "kept_share": _share(g(KIND_KEPT), masked),
        },
        "length_histogram": {str(k): histogram[k] for k in sorted(histogram)},
    }
