"""Build statistics: counter names, and the manifest's ``stats`` section made from them.

Every step counts what it reads, keeps and drops in flat counters (summed across
workers); ``summarize`` arranges them for the manifest. Drop reasons are the
snake_case names below, the same names the tests assert on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# --- what the readers count -------------------------------------------------------------
FILES_READ = "files_read"
RECORDS_READ = "records_read"
"""Records seen: JSON lines, table rows, blank-line-separated text blocks, HTML pages.
``records_read == documents_read + sum(RECORD_DROPS)`` for every input."""
DOCUMENTS_READ = "documents_read"
DOCUMENTS_CLEANED = "documents_cleaned"

# drop reasons of a whole file (or of the rest of it: what was read before the fault is kept)
BINARY_FILE = "binary_file"
EMPTY_FILE = "empty_file"
UNREADABLE_FILE = "unreadable_file"  # cannot be opened, or a corrupt compressed stream / table
UNDECODABLE_FILE = "undecodable_file"  # bytes that fit no text encoding
TRUNCATED_FILE = "truncated_file"  # a compressed stream cut short: the partial last record is dropped
ARCHIVE_FILE = "archive_file"  # a tar or zip archive: its members would read as one text, headers and all
HIDDEN_FILE = "hidden_file"  # a name starting with "." inside an input folder: skipped, listed
LINKED_FOLDER_SEEN = "linked_folder_seen"  # a link to a folder already walked (a loop): skipped, listed
INSIDE_OUTPUT = "inside_output"  # a file under the build's own output folder: never an input
UNSUPPORTED_FORMAT = "unsupported_format"  # a spreadsheet-like file (CSV, TSV): its cells would read as prose
DUPLICATE_INPUT = "duplicate_input"  # a file named again (another spelling, a link to it): read once
NOT_REGULAR_FILE = "not_regular_file"  # a named pipe, socket or device: reading it could wait forever
EARLIER_BUILD = "earlier_build"  # a folder holding a corpusgen build (manifest.json): its shards are no text
SKIPPED_FILES = (
    HIDDEN_FILE,
    LINKED_FOLDER_SEEN,
    INSIDE_OUTPUT,
    UNSUPPORTED_FORMAT,
    DUPLICATE_INPUT,
    EARLIER_BUILD,
    NOT_REGULAR_FILE,
)
# (left out before reading, and listed in the manifest's skipped_inputs)

# drop reasons of one record (never fatal, never the whole file)
INVALID_UTF8 = "invalid_utf8"
INVALID_UNICODE = "invalid_unicode"  # a lone surrogate ("\\ud800" in JSON): no valid text holds one
NUL_BYTE = "nul_byte"  # a NUL in a record of a text file: a sign of binary damage, not of text
LINE_TOO_LONG = "line_too_long"
MALFORMED_JSON = "malformed_json"
MISSING_TEXT_FIELD = "missing_text_field"
NON_STRING_TEXT = "non_string_text"
DOCUMENT_TOO_LONG = "document_too_long"

# drop reasons of a document after reading
EMPTY_DOCUMENT = "empty_document"
HTML_TOO_DEEP = "html_too_deep"  # elements nested deeper than corpusgen.html.MAX_NESTING: not parsed
DOCUMENT_ERROR = "document_error"  # an unexpected exception while cleaning, splitting or tokenizing it (logged)
DUPLICATE_DOCUMENT = "duplicate_document"
EMPTY_AFTER_TOKENIZATION = "empty_after_tokenization"
SINGLE_SENTENCE = "single_sentence"  # no pair can be cut from one sentence (nsp/sop builds)
NEAR_DUPLICATE_DOCUMENT = "near_duplicate_document"
QUALITY_PREFIX = "quality_"  # quality_<reason> for each rule of corpusgen.quality

# not drops: counted for the manifest's "cleaning" and "other" sections
LEGACY_ENCODING_FILES = "legacy_encoding_files"  # files decoded from a non-UTF-8 codec
WIKITEXT_HEADING_LINES = "wikitext_heading_lines"  # structure, not prose: counted, not kept
HTML_DOCUMENTS = "html_documents"
MOJIBAKE_FIXED_DOCUMENTS = "mojibake_fixed_documents"
BOILERPLATE_LINES_REMOVED = "boilerplate_lines_removed"

FILE_DROPS = (BINARY_FILE, EMPTY_FILE, UNREADABLE_FILE, UNDECODABLE_FILE, TRUNCATED_FILE, ARCHIVE_FILE, *SKIPPED_FILES)
RECORD_DROPS = (
    INVALID_UTF8,
    INVALID_UNICODE,
    NUL_BYTE,
    LINE_TOO_LONG,
    MALFORMED_JSON,
    MISSING_TEXT_FIELD,
    NON_STRING_TEXT,
    DOCUMENT_TOO_LONG,
)
DOCUMENT_DROPS = (
    EMPTY_DOCUMENT,
    HTML_TOO_DEEP,
    DOCUMENT_ERROR,
    DUPLICATE_DOCUMENT,
    NEAR_DUPLICATE_DOCUMENT,
    EMPTY_AFTER_TOKENIZATION,
    SINGLE_SENTENCE,
)
DROP_REASONS = FILE_DROPS + RECORD_DROPS + DOCUMENT_DROPS
LENGTH_PREFIX = "length_"
# how a position chosen for prediction is shown to the model (counted from the rows)
KIND_MASK, KIND_RANDOM, KIND_KEPT = "masked_mask", "masked_random", "masked_kept"


def mask_kinds(shown, labels, mask_id: int) -> dict[str, int]:
    """The kind counters of chosen positions from what the model is shown there and their labels."""
    is_mask = shown == mask_id
    is_kept = shown == labels
    return {KIND_MASK: int(is_mask.sum()), KIND_KEPT: int(is_kept.sum()), KIND_RANDOM: int((~is_mask & ~is_kept).sum())}


def length_counter(length: int) -> str:
    return f"{LENGTH_PREFIX}{length}"


PAD_MULTIPLE = 8  # the loader pads a batch to its longest row rounded up to this (trainer.data.round_up)


def padding_share_bound(lengths: Mapping[int, int], length_bin_width: int, max_seq_length: int) -> float | None:
    """Padding positions over all positions if every row were padded to its length bin's top
    (rounded up to ``PAD_MULTIPLE``): an upper bound of the share the trainer's batches carry, which
    draw each batch from one bin and pad to the batch's longest row. ``lengths``: rows by length."""
    rows = positions = 0
    for length, count in lengths.items():
        top = min(max_seq_length, ((length - 1) // length_bin_width + 1) * length_bin_width)
        width = -(-top // PAD_MULTIPLE) * PAD_MULTIPLE
        rows += length * count
        positions += width * count
    return round(1 - rows / positions, 6) if positions else None


def packing_summary(c: Mapping[str, int], length_bin_width: int, max_seq_length: int) -> dict:
    """The manifest's ``stats["packing"]`` of a packed build (``corpusgen.packing`` counts the rows)."""
    rows = int(c.get("packed_rows", 0))
    histogram = {int(k[len(LENGTH_PREFIX) :]): int(v) for k, v in c.items() if k.startswith(LENGTH_PREFIX)}
    return {
        "packed_rows": rows,
        "full_rows": int(c.get("packed_rows_full", 0)),
        "segments": int(c.get("packed_segments", 0)),
        "fill": _share(int(c.get("instance_tokens", 0)), rows * max_seq_length),
        "padding": {
            "share_at_most": padding_share_bound(histogram, length_bin_width, max_seq_length),
            "rule": f"rows padded to their length bin's top (width {length_bin_width}), "
            f"rounded up to {PAD_MULTIPLE}; the trainer pads to the batch's longest row",
        },
        "truncated_tokens": int(c.get("tokens_truncated_away", 0)),
    }


def input_summary(s: Mapping) -> str:
    """One line of the input funnel from a manifest's ``stats``: files → records → documents.

    Records that never became documents (a number where the text should be, broken JSON) are
    counted as records dropped, so the line adds up: records read = documents read + dropped.
    """
    f, r, d = s["files"], s["records"], s["documents"]
    return (
        f"files: {f['read']} read ({f['dropped']} dropped in whole or part), {f['skipped']} skipped; "
        f"records: {r['read']} read, {r['dropped']} dropped; "
        f"documents: {d['read']} read, {d['kept']} kept"
    )


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
        "files": {
            "read": g(FILES_READ),
            "dropped": sum(g(r) for r in FILE_DROPS if r not in SKIPPED_FILES),  # read, but lost in whole or part
            "skipped": sum(g(r) for r in SKIPPED_FILES),  # never read
        },
        "records": {"read": g(RECORDS_READ), "dropped": sum(g(r) for r in RECORD_DROPS)},
        "documents": {
            "read": g(DOCUMENTS_READ),
            "cleaned": g(DOCUMENTS_CLEANED),
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
            LEGACY_ENCODING_FILES: g(LEGACY_ENCODING_FILES),
            HTML_DOCUMENTS: g(HTML_DOCUMENTS),
            MOJIBAKE_FIXED_DOCUMENTS: g(MOJIBAKE_FIXED_DOCUMENTS),
            BOILERPLATE_LINES_REMOVED: g(BOILERPLATE_LINES_REMOVED),
        },
        "other": {
            WIKITEXT_HEADING_LINES: g(WIKITEXT_HEADING_LINES),
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
