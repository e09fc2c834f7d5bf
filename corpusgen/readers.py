"""Parse input files into documents: plain text, JSONL, Parquet, Arrow and HF datasets.

Readers take an open binary stream (already decompressed) or a path, and yield
document strings. Whatever cannot be read is skipped and counted in ``counts``
under a drop reason below; a reader never raises on bad data.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import IO, Iterator

from corpusgen.config import BuildConfig

# drop reasons (counted per file, line or document as named)
BINARY_FILE = "binary_file"
EMPTY_FILE = "empty_file"
UNREADABLE_FILE = "unreadable_file"
INVALID_UTF8 = "invalid_utf8"
LINE_TOO_LONG = "line_too_long"
MALFORMED_JSON = "malformed_json"
MISSING_TEXT_FIELD = "missing_text_field"
NON_STRING_TEXT = "non_string_text"
DOCUMENT_TOO_LONG = "document_too_long"
WIKITEXT_HEADING_LINES = "wikitext_heading_lines"  # structure, not prose: counted, not kept

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".zstd", ".xz", ".deflate")
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
_CHUNK = 1 << 20

_WIKITEXT_TITLE = re.compile(rb"^ ?= [^=].* = ?$")
_WIKITEXT_SECTION = re.compile(rb"^ ?(= ){2,}.* =( =)+ ?$")


def strip_compression_suffix(path: str) -> str:
    lower = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)]
    return path


def detect_format(path: str, cfg: BuildConfig) -> str:
    """The input format of one file: the configured one, else by its name."""
    if cfg.input_format not in ("auto", "hf"):
        return cfg.input_format
    name = strip_compression_suffix(path).lower()
    if cfg.input_format == "hf" or name.endswith(_ARROW_SUFFIXES):
        return "arrow"
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def expand_hf_dataset_dir(path: str) -> list[str] | None:
    """Data files of a local ``datasets`` ``save_to_disk`` folder, or None if it is not one."""
    root = Path(path)
    if (root / "dataset_dict.json").is_file():
        splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        return [f for split in splits for f in expand_hf_dataset_dir(str(root / split)) or []]
    state = root / "state.json"
    if not state.is_file():
        return None
    files = json.loads(state.read_text()).get("_data_files", [])
    return [str(root / f["filename"]) for f in files]


# --- line-oriented streams -------------------------------------------------------------


def iter_lines(stream: IO[bytes], max_line_bytes: int, counts: Counter) -> Iterator[bytes]:
    """Lines of a binary stream without their ``\\n``; lines over the limit are skipped whole.

    Reads fixed-size blocks, so memory stays bounded even for a multi-gigabyte line.
    """
    pending: list[bytes] = []
    pending_len = 0
    skipping = False
    while True:
        block = stream.read(_CHUNK)
        if not block:
            break
        start = 0
        while True:
            nl = block.find(b"\n", start)
            if nl < 0:
                piece = block[start:]
                if not skipping:
                    pending.append(piece)
                    pending_len += len(piece)
                    if pending_len > max_line_bytes:
                        skipping, pending, pending_len = True, [], 0
                break
            piece = block[start:nl]
            if skipping:
                counts[LINE_TOO_LONG] += 1
                skipping = False
            elif pending_len + len(piece) > max_line_bytes:
                counts[LINE_TOO_LONG] += 1
            else:
                yield b"".join(pending) + piece if pending else piece
            pending, pending_len = [], 0
            start = nl + 1
    if skipping:
        counts[LINE_TOO_LONG] += 1
    elif pending_len:
        yield b"".join(pending)


def _sniff(stream: IO[bytes], counts: Counter) -> tuple[bytes, str] | None:
    """First block of a stream and its encoding; None (counted) if empty or binary."""
    head = stream.read(_CHUNK)
    if not head:
        counts[EMPTY_FILE] += 1
        return None
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                     (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):  # fmt: skip
        if head.startswith(bom):
            return head, enc
    if b"\x00" in head[:8192]:
        counts[BINARY_FILE] += 1
        return None
    return head, "utf-8"


class _Prefixed:
    """A stream with an already-read head put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.rest.read(n)


def _reencoded(head: bytes, rest: IO[bytes], encoding: str, counts: Counter) -> IO[bytes] | None:
    """A UTF-16/32 file re-encoded as UTF-8 (these are small in practice; read whole)."""
    import io

    try:
        return io.BytesIO((head + rest.read()).decode(encoding).encode("utf-8"))
    except UnicodeDecodeError:
        counts[INVALID_UTF8] += 1
        return None


def _open_text(stream: IO[bytes], counts: Counter) -> IO[bytes] | None:
    sniffed = _sniff(stream, counts)
    if sniffed is None:
        return None
    head, encoding = sniffed
    if encoding == "utf-8-sig":
        return _Prefixed(head[3:], stream)
    if encoding != "utf-8":
        return _reencoded(head, stream, encoding, counts)
    return _Prefixed(head, stream)


def _finish(lines: list[bytes], cfg: BuildConfig, counts: Counter) -> str | None:
    try:
        text = b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        counts[INVALID_UTF8] += 1
        return None
    if len(text) > cfg.max_document_chars:
        counts[DOCUMENT_TOO_LONG] += 1
        return None
    return text


def read_text_documents(stream: IO[bytes], cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """Documents of a plain-text file.

    Default: documents are separated by blank lines (one sentence or paragraph per
    line, the google-research/bert layout). ``doc_per_file``: the file is one
    document, blank lines separate paragraphs. ``wikitext_headings``: a top-level
    `` = Title = `` line starts a document, blank lines separate paragraphs, and
    heading lines are dropped (counted).
    """
    text_stream = _open_text(stream, counts)
    if text_stream is None:
        return
    lines: list[bytes] = []
    size = 0
    too_long = False

    def flush() -> Iterator[str]:
        nonlocal lines, size, too_long
        if too_long:
            counts[DOCUMENT_TOO_LONG] += 1
        elif any(line.strip() for line in lines):
            doc = _finish(lines, cfg, counts)
            if doc is not None:
                yield doc
        lines, size, too_long = [], 0, False

    for line in iter_lines(text_stream, cfg.max_line_bytes, counts):
        if cfg.wikitext_headings:
            if _WIKITEXT_TITLE.match(line):
                counts[WIKITEXT_HEADING_LINES] += 1
                yield from flush()
                continue
            if _WIKITEXT_SECTION.match(line):
                counts[WIKITEXT_HEADING_LINES] += 1
                line = b""
        elif not cfg.doc_per_file and not line.strip():
            yield from flush()
            continue
        if too_long:
            continue
        size += len(line) + 1
        if size > cfg.max_document_chars * 4:  # UTF-8 bytes bound the characters from above
            too_long, lines = True, []
            continue
        lines.append(line)
    yield from flush()


def read_jsonl_documents(stream: IO[bytes], cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """Documents of a JSON-lines file: the ``cfg.text_field`` string of each object."""
    text_stream = _open_text(stream, counts)
    if text_stream is None:
        return
    field = cfg.text_field
    for line in iter_lines(text_stream, cfg.max_line_bytes, counts):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except UnicodeDecodeError:
            counts[INVALID_UTF8] += 1
            continue
        except ValueError:
            counts[MALFORMED_JSON] += 1
            continue
        if not isinstance(record, dict):
            counts[MALFORMED_JSON] += 1
            continue
        text = record.get(field)
        if text is None:
            counts[MISSING_TEXT_FIELD] += 1
        elif not isinstance(text, str):
            counts[NON_STRING_TEXT] += 1
        elif len(text) > cfg.max_document_chars:
            counts[DOCUMENT_TOO_LONG] += 1
        else:
            yield text


def open_arrow_source(path: str):
    """A random-access pyarrow file for a local or remote (gs://, s3://, hdfs://) path."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    if "://" in path:
        fs, inner = pafs.FileSystem.from_uri(path)
        return fs.open_input_file(inner)
    return pa.memory_map(os.path.abspath(path), "r")


def table_batches(path: str, fmt: str, columns: list[str] | None = None):
    """Record batches of a Parquet or Arrow (IPC file or stream) file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = open_arrow_source(path)
    if fmt == "parquet":
        yield from pq.ParquetFile(source).iter_batches(batch_size=1024, columns=columns)
        return
    magic = source.read(6)
    source.seek(0)
    if magic == b"ARROW1":
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    else:
        yield from pa.ipc.open_stream(source)


def table_schema(path: str, fmt: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = open_arrow_source(path)
    if fmt == "parquet":
        return pq.ParquetFile(source).schema_arrow
    magic = source.read(6)
    source.seek(0)
    return pa.ipc.open_file(source).schema if magic == b"ARROW1" else pa.ipc.open_stream(source).schema


def read_table_documents(path: str, fmt: str, cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """Documents of a Parquet or Arrow file: the ``cfg.text_field`` column."""
    import pyarrow as pa

    field = cfg.text_field
    try:
        schema = table_schema(path, fmt)
    except (OSError, pa.ArrowInvalid):
        counts[UNREADABLE_FILE] += 1
        return
    if field not in schema.names:
        counts[MISSING_TEXT_FIELD] += 1
        return
    if not (pa.types.is_string(schema.field(field).type) or pa.types.is_large_string(schema.field(field).type)):
        counts[NON_STRING_TEXT] += 1
        return
    try:
        for batch in table_batches(path, fmt, [field] if fmt == "parquet" else None):
            for text in batch.column(batch.schema.get_field_index(field)).to_pylist():
                if text is None:
                    counts[MISSING_TEXT_FIELD] += 1
                elif len(text) > cfg.max_document_chars:
                    counts[DOCUMENT_TOO_LONG] += 1
                else:
                    yield text
    except (OSError, pa.ArrowInvalid):
        counts[UNREADABLE_FILE] += 1
