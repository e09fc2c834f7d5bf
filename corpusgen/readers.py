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
from collections.abc import Iterator
from pathlib import Path
from typing import IO

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
_HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".shtml")
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
    if name.endswith(_HTML_SUFFIXES):
        return "html"
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


UNDECODABLE_FILE = "undecodable_file"
LEGACY_ENCODING_FILES = "legacy_encoding_files"  # not a drop: files decoded from a non-UTF-8 codec
_DETECT_BYTES = 1 << 16


def _utf8_prefix_ok(head: bytes) -> bool:
    """Whether ``head`` is UTF-8, allowing a character cut at its end."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _mostly_utf8(probe: bytes) -> bool:
    """UTF-8 with a few broken bytes (drop those documents), not a legacy encoding (decode the file)."""
    text = probe.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = len(_NON_ASCII.findall(text)) - bad
    # Legacy-encoded text read as UTF-8 yields almost no valid multi-byte sequences.
    return good >= 2 and good >= bad


class _Prefixed:
    """A stream with an already-read head put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.rest.read(n)


class _Recoded:
    """A stream in another encoding, re-encoded to UTF-8 on the fly (strictly: stops at a bad byte)."""

    def __init__(self, head: bytes, rest: IO[bytes], codec: str, counts: Counter) -> None:
        import codecs

        self.source = _Prefixed(head, rest)
        self.decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        self.counts = counts
        self.done = False

    def read(self, n: int = -1) -> bytes:
        while not self.done:
            block = self.source.read(n if n > 0 else _CHUNK)
            try:
                text = self.decoder.decode(block, final=not block)
            except UnicodeDecodeError:
                # The rest of the file does not fit the codec: keep what came before, count the file.
                self.counts[UNDECODABLE_FILE] += 1
                self.done = True
                return b""
            if not block:
                self.done = True
            if text:
                return text.encode("utf-8")
        return b""


def _open_text(stream: IO[bytes], cfg: BuildConfig, counts: Counter, *, detect: bool = True) -> IO[bytes] | None:
    """The file as a UTF-8 byte stream, or None (counted) when empty, binary or undecodable.

    ``detect=False`` (JSON, which RFC 8259 defines as UTF-8): no code-page detection; invalid
    bytes make their records invalid_utf8.
    """
    from corpusgen import encoding

    head = stream.read(_CHUNK)
    if not head:
        counts[EMPTY_FILE] += 1
        return None
    probe = head[:_DETECT_BYTES]
    if cfg.encoding not in ("auto", "utf-8"):
        codec = encoding.normalize_encoding(cfg.encoding)
        for bom, bom_codec in encoding._BOMS:  # a byte-order mark outranks a declaration
            if head.startswith(bom):
                codec = bom_codec
                break
    elif head.startswith(b"\xef\xbb\xbf"):
        return _Prefixed(head[3:], stream)
    elif b"\x00" not in probe and (
        cfg.encoding == "utf-8" or not detect or _utf8_prefix_ok(head) or _mostly_utf8(probe)
    ):
        return _Prefixed(head, stream)  # the common case: no detection at all
    elif (cfg.encoding == "utf-8" or not detect) and not encoding._sniff_utf16_32(probe):
        counts[BINARY_FILE] += 1
        return None
    else:
        # Detection looks at a prefix; cut back to a whole character for multi-byte codecs.
        for cut in range(4):
            try:
                _, codec = encoding.decode_bytes(probe[: len(probe) - cut] if len(head) > len(probe) else head)
                break
            except encoding.DecodeError as exc:
                if exc.reason == encoding.BINARY:
                    counts[BINARY_FILE] += 1
                    return None
        else:
            counts[UNDECODABLE_FILE] += 1
            return None
        if codec == "utf-8":
            return _Prefixed(head, stream)
    for bom, bom_codec in encoding._BOMS:
        if bom_codec == codec and head.startswith(bom):
            head = head[len(bom) :]
            break
    if codec == "utf-8-sig":
        return _Prefixed(head, stream)
    if not codec.startswith(("utf-16", "utf-32")):
        counts[LEGACY_ENCODING_FILES] += 1
    return _Recoded(head, stream, codec, counts)


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


def read_html_document(stream: IO[bytes], cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """One web page per file, decoded by BOM, declared encoding, <meta charset> or detection."""
    from corpusgen import encoding

    data = stream.read(cfg.max_document_chars * 4 + 1)
    if not data:
        counts[EMPTY_FILE] += 1
        return
    if len(data) > cfg.max_document_chars * 4:
        counts[DOCUMENT_TOO_LONG] += 1
        return
    declared = None if cfg.encoding in ("auto", "utf-8") else cfg.encoding
    try:
        text, codec = encoding.decode_bytes(data, declared)
    except encoding.DecodeError as exc:
        counts[BINARY_FILE if exc.reason == encoding.BINARY else UNDECODABLE_FILE] += 1
        return
    if codec not in ("utf-8", "utf-8-sig", "ascii"):
        counts[LEGACY_ENCODING_FILES] += 1
    yield text


def read_text_documents(stream: IO[bytes], cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """Documents of a plain-text file.

    Default: documents are separated by blank lines (one sentence or paragraph per
    line, the google-research/bert layout). ``doc_per_file``: the file is one
    document, blank lines separate paragraphs. ``wikitext_headings``: a top-level
    `` = Title = `` line starts a document, blank lines separate paragraphs, and
    heading lines are dropped (counted).
    """
    text_stream = _open_text(stream, cfg, counts)
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
    text_stream = _open_text(stream, cfg, counts, detect=False)
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
