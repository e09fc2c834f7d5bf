"""Read input files into documents: the one table of input formats and the one way to open a file.

``FORMATS`` maps each input format (text, jsonl, parquet, arrow, hf, html) to its reader;
``read_documents(path, cfg, counts, opener)`` picks the format, opens and decompresses the file
and yields its documents. The build pipeline, ``corpusgen vocab`` and the input checks all read
through it; adding a format is one reader function and one ``FORMATS`` entry here.

Opening is a seam: ``opener(path)`` returns the file's raw bytes (``open_local`` here; the
pipeline passes Beam's ``FileSystems`` so gs://, s3://, hdfs:// work), and decompression
(.gz, .bz2, .zst, .xz, .deflate) is done here, so a stream cut short is recognised as truncated.

Whatever cannot be read is skipped and counted in ``counts`` under a drop reason of
``corpusgen.stats``; a reader never raises on bad data, and a record (JSON line, table row,
blank-line-separated text block, HTML page) is either yielded whole or counted, never cut.
Parquet and Arrow files are read by path (pyarrow needs random access; it opens local and
remote paths itself). Text cleaning is ``corpusgen.clean``'s.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from corpusgen.stats import (
    ARCHIVE_FILE,
    BINARY_FILE,
    DOCUMENT_TOO_LONG,
    DOCUMENTS_READ,
    EMPTY_FILE,
    FILE_DROPS,
    FILES_READ,
    INVALID_UNICODE,
    INVALID_UTF8,
    LEGACY_ENCODING_FILES,
    LINE_TOO_LONG,
    MALFORMED_JSON,
    MISSING_TEXT_FIELD,
    NON_STRING_TEXT,
    NUL_BYTE,
    RECORDS_READ,
    TRUNCATED_FILE,
    UNDECODABLE_FILE,
    UNREADABLE_FILE,
    WIKITEXT_HEADING_LINES,
)

if TYPE_CHECKING:
    from corpusgen.config import BuildConfig

log = logging.getLogger("corpusgen")

Opener = Callable[[str], IO[bytes]]
"""Opens a path for reading its raw (still compressed) bytes."""


def open_local(path: str) -> IO[bytes]:
    return open(path, "rb")


_CHUNK = 1 << 20
_DETECT_BYTES = 1 << 16
_WIKITEXT_TITLE = re.compile(rb"^ ?= [^=].* = ?$")
_WIKITEXT_SECTION = re.compile(rb"^ ?(= ){2,}.* =( =)+ ?$")
_SURROGATE = re.compile("[\ud800-\udfff]")


# --- compressed streams ---------------------------------------------------------------------


class StreamCut(Exception):
    """The rest of a file cannot be read; ``reason`` is the file's drop reason.

    Raised from inside a reader, it ends the reader's generator, so the record being read
    when the stream ended is dropped with it; the records yielded before stay.
    """

    def __init__(self, reason: str, detail: str = "", *, whole_file: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.whole_file = whole_file  # nothing of the file was read


NOT_TEXT = "binary data, not text (leave it out, or pass --input-format for a table)"
# a Feather V1 file opens with its magic and the NULs that pad it to 8 bytes: text may start "FEA1" too
FEATHER_V1 = b"FEA1\x00\x00\x00\x00"
FEATHER_V1_FIX = "a Feather V1 file (older than Arrow IPC); rewrite it: pyarrow.feather.write_feather(pyarrow.feather.read_table(F), F2)"
TABLE_NAMES = {"arrow": "an Arrow IPC", "parquet": "a Parquet"}


def _table_kind(head: bytes) -> str | None:
    """``arrow`` or ``parquet`` when the first bytes are an Arrow IPC (file or stream) or Parquet file's."""
    stream = head.startswith(b"\xff\xff\xff\xff") and 0 < int.from_bytes(head[4:8], "little") < 1 << 24
    if head.startswith(b"ARROW1") or stream:  # a stream: a continuation marker, then its schema's length
        return "arrow"
    return "parquet" if head.startswith(b"PAR1") else None


def _tar_checksum_ok(header: bytes) -> bool:
    """Whether a 512-byte tar header's checksum field holds the sum of its bytes (the field as spaces):
    text that happens to hold "ustar" at byte 257 is no archive."""
    try:
        stored = int(header[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(header[:148]) + 8 * 32 + sum(header[156:])


def _archive_kind(head: bytes) -> str | None:
    """``tar`` or ``zip`` when the (decompressed) first bytes of a file are an archive's."""
    if len(head) >= 512 and head[257:263] in (b"ustar\x00", b"ustar ") and _tar_checksum_ok(head[:512]):
        return "tar"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    return None


COMPRESSIONS = {
    ".gz": "gzip",
    ".bz2": "bz2",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".xz": "lzma",
    ".lzma": "lzma",
    ".deflate": "deflate",
}
COMPRESSION_SUFFIXES = tuple(COMPRESSIONS)
# zstd's decompressobj has no output limit; small feeds bound one call's output (a 4-byte RLE block
# expands to at most 128 KiB, so 4 KiB in gives at most 128 MiB out even for a crafted file).
_ZSTD_FEED = 1 << 12
_FEED = 1 << 18


def _codec_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    import zstandard

    return (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


class _Decompressed:
    """A decompressing read-only stream that knows when its input ends before the end marker.

    Python's and Beam's file wrappers return a clean end of file for a stream cut short (Beam's
    zstd even yields nothing at all); here each compressed member/frame must reach its end, else
    the read raises ``StreamCut(TRUNCATED_FILE)`` after returning every byte decoded before the cut.
    Concatenated members (gzip, bz2, xz) and frames (zstd) are read in turn.
    """

    def __init__(self, raw: IO[bytes], kind: str) -> None:
        self.raw, self.kind = raw, kind
        self.feed = _ZSTD_FEED if kind == "zstd" else _FEED
        self.dec = None
        self.inbuf = b""
        self.out = b""
        self.raw_done = False
        self.error: StreamCut | None = None
        self.pending: Exception | None = None  # an error to raise once the bytes decoded before it are out
        self.errors = _codec_errors()

    def _new(self):
        import bz2
        import lzma
        import zlib

        if self.kind == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        if self.kind == "deflate":
            return zlib.decompressobj()
        if self.kind == "bz2":
            return bz2.BZ2Decompressor()
        if self.kind == "lzma":
            return lzma.LZMADecompressor()
        import zstandard

        # Beam's window limit too: frames written with --long need more than the default 128 MiB.
        return zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()

    def _decode(self, data: bytes, n: int) -> bytes:
        dec = self.dec
        if self.kind in ("gzip", "deflate"):
            before = dec.copy()
            try:
                out = dec.decompress(data, n)
            except self.errors as exc:
                # A bad check value in the trailer fails the call that decodes the member's last
                # bytes: decode them again in smaller calls, all but the last byte, then fail.
                saved = self._salvage(before, data, n)
                if not saved:
                    raise
                self.pending = exc  # raised by the next step, once these bytes are out
                return saved
            self.inbuf = dec.unused_data if dec.eof else dec.unconsumed_tail
        elif self.kind in ("bz2", "lzma"):
            out = dec.decompress(data, n)
            self.inbuf = dec.unused_data if dec.eof else b""
        else:
            out = dec.decompress(data)
            self.inbuf = dec.unused_data if dec.eof else b""
        return out

    def _salvage(self, dec, data: bytes, n: int) -> bytes:
        """What a zlib stream that fails at ``data`` still decodes to, from the state ``dec`` before it."""
        parts = []
        while n:
            trial = dec.copy()
            try:
                piece = trial.decompress(data, n)
            except self.errors:
                n //= 2
                continue
            if not piece:
                break
            parts.append(piece)
            dec, data = trial, trial.unconsumed_tail
        return b"".join(parts)

    def _step(self, n: int) -> bytes:
        """Some decoded bytes; b"" at a clean end."""
        if self.pending is not None:
            raise self.pending
        while True:
            dec = self.dec
            if dec is not None and not dec.eof and self.kind in ("bz2", "lzma") and not dec.needs_input:
                out = self._decode(b"", n)  # output it holds from input already given
                if out:
                    return out
            if not self.inbuf and not self.raw_done:
                self.inbuf = self.raw.read(self.feed)
                self.raw_done = not self.inbuf
            if not self.inbuf:
                if dec is not None and not dec.eof:
                    raise StreamCut(TRUNCATED_FILE, f"the {self.kind} stream ends before its end marker")
                return b""
            if dec is None or dec.eof:
                if self.kind == "gzip":  # gzip allows zero padding after a member
                    self.inbuf = self.inbuf.lstrip(b"\x00")
                    if not self.inbuf:
                        continue
                self.dec = self._new()
            out = self._decode(self.inbuf, n)
            if out:
                return out

    def read(self, n: int = -1) -> bytes:
        want = n if n is not None and n >= 0 else 1 << 62
        parts, have = ([self.out], len(self.out)) if self.out else ([], 0)
        self.out = b""
        while have < want and self.error is None:
            try:
                chunk = self._step(min(want - have, _CHUNK))
            except StreamCut as exc:
                self.error = exc
                break
            except self.errors as exc:
                self.error = StreamCut(UNREADABLE_FILE, f"corrupt {self.kind} stream ({exc})")
                break
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if len(data) > want:
            data, self.out = data[:want], data[want:]
        if not data and self.error is not None:
            raise self.error
        return data


def compression_of(path: str) -> str | None:
    lower = path.lower()
    for suffix, kind in COMPRESSIONS.items():
        if lower.endswith(suffix):
            return kind
    return None


def strip_compression_suffix(path: str) -> str:
    lower = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)]
    return path


def open_decompressed(raw: IO[bytes], path: str) -> IO[bytes]:
    """``raw`` (the file's bytes) decompressed by the suffix of ``path``."""
    kind = compression_of(path)
    return raw if kind is None else _Decompressed(raw, kind)  # type: ignore[return-value]


# --- line-oriented streams -------------------------------------------------------------


def iter_lines(stream: IO[bytes], max_line_bytes: int) -> Iterator[bytes | None]:
    """Lines of a binary stream without their ``\\n``; ``None`` for a line over the limit (skipped).

    Reads fixed-size blocks, so memory stays bounded even for a multi-gigabyte line. A last
    line without a newline is yielded at the end of the stream; an error reading the stream
    propagates before that partial line is yielded.
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
            if skipping or pending_len + len(piece) > max_line_bytes:
                skipping = False
                yield None
            else:
                yield b"".join(pending) + piece if pending else piece
            pending, pending_len = [], 0
            start = nl + 1
    if skipping:
        yield None
    elif pending_len:
        yield b"".join(pending)


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _utf8_prefix_ok(head: bytes) -> bool:
    """Whether ``head`` is UTF-8, allowing a character cut at its end."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


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
    """A stream in another encoding, re-encoded to UTF-8 on the fly.

    Strict: at the first byte the codec cannot decode, the rest of the file is dropped
    (``StreamCut(UNDECODABLE_FILE)``), and with it the record being read.
    """

    def __init__(self, head: bytes, rest: IO[bytes], codec: str) -> None:
        import codecs

        self.source = _Prefixed(head, rest)
        self.decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        self.codec = codec
        self.done = False

    def read(self, n: int = -1) -> bytes:
        while not self.done:
            block = self.source.read(n if n > 0 else _CHUNK)
            try:
                text = self.decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                self.done = True
                raise StreamCut(UNDECODABLE_FILE, f"not {self.codec} past this point ({exc.reason})") from None
            except UnicodeError as exc:  # UTF-16/32 without a byte-order mark: the byte order is unknown
                self.done = True
                fix = (
                    f"name the byte order (e.g. --encoding {self.codec}-le or -be) or use --encoding auto"
                    if self.codec.startswith(("utf-16", "utf-32"))  # codecs.lookup's names
                    else "use --encoding auto"
                )
                raise StreamCut(UNDECODABLE_FILE, f"not {self.codec} as given ({exc}); {fix}") from None
            if not block:
                self.done = True
            if text:
                return text.encode("utf-8")
        return b""


def _open_text(stream: IO[bytes], cfg: BuildConfig, counts: Counter, *, detect: bool = True) -> IO[bytes] | None:
    """The file as a UTF-8 byte stream, or None (counted) when empty, binary or undecodable.

    Evidence, strongest first: a declared ``--encoding`` (a BOM outranks it), a BOM or the NUL
    pattern of UTF-16/32, binary evidence (magic number, many control bytes), UTF-8, detection.
    ``detect=False`` (JSON, which RFC 8259 defines as UTF-8): no code-page detection; invalid
    bytes make their records invalid_utf8.
    """
    from corpusgen import encoding  # lazily: it loads the charset detector

    head = stream.read(_CHUNK)
    if not head:
        counts[EMPTY_FILE] += 1
        return None
    archive = _archive_kind(head)
    if archive is not None:
        raise StreamCut(ARCHIVE_FILE, f"a {archive} archive; extract it and pass the folder", whole_file=True)
    table = _table_kind(head)
    if table is not None:
        raise StreamCut(
            BINARY_FILE,
            f"{TABLE_NAMES[table]} file; name it *.{table} or pass --input-format {table}",
            whole_file=True,
        )
    if head.startswith(FEATHER_V1):
        raise StreamCut(BINARY_FILE, FEATHER_V1_FIX, whole_file=True)
    probe = head[:_DETECT_BYTES]
    unicode = encoding.sniff_unicode(head)
    if cfg.encoding not in ("auto", "utf-8") and (unicode is None or unicode[1] == 0):
        codec = encoding.normalize_encoding(cfg.encoding)
    elif unicode is not None:
        codec, bom = unicode
        head = head[bom:]
        if codec == "utf-8-sig":
            return _Prefixed(head, stream)
    elif encoding.looks_binary(probe):
        raise StreamCut(BINARY_FILE, NOT_TEXT, whole_file=True)
    elif cfg.encoding == "utf-8" or not detect or _utf8_prefix_ok(head) or _mostly_utf8(probe):
        return _Prefixed(head, stream)  # the common case: no detection at all
    else:
        # Detection looks at a prefix; cut back to a whole character for multi-byte codecs. A stray
        # NUL is no evidence of an encoding (its record is dropped later), so it is left out.
        sample = (probe if len(head) > len(probe) else head).replace(b"\x00", b"")
        for cut in range(4):
            try:
                _, codec = encoding.decode_bytes(sample[: len(sample) - cut] if len(head) > len(probe) else sample)
                break
            except encoding.DecodeError as exc:
                if exc.reason == encoding.BINARY:
                    raise StreamCut(BINARY_FILE, NOT_TEXT, whole_file=True) from None
        else:
            raise StreamCut(UNDECODABLE_FILE, "its bytes fit no text encoding (pass --encoding if you know it)",
                            whole_file=True)  # fmt: skip
        if codec in ("utf-8", "ascii"):
            return _Prefixed(head, stream)
    if not codec.startswith(("utf-16", "utf-32")):
        counts[LEGACY_ENCODING_FILES] += 1
    return _Recoded(head, stream, codec)


# --- records ------------------------------------------------------------------------------


def _check_text(text: str, cfg: BuildConfig) -> str | None:
    """The drop reason of a record's text, or None when it is fit to be a document."""
    if _SURROGATE.search(text):
        return INVALID_UNICODE
    if "\x00" in text:
        return NUL_BYTE
    if len(text) > cfg.max_document_chars:
        return DOCUMENT_TOO_LONG
    return None


def _check_bytes(data: bytes, cfg: BuildConfig) -> tuple[str | None, str | None]:
    """``(text, None)`` or ``(None, drop reason)`` for a record's UTF-8 bytes."""
    if b"\x00" in data:
        return None, NUL_BYTE
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, INVALID_UTF8
    reason = _check_text(text, cfg)
    return (None, reason) if reason else (text, None)


# --- readers: stream → documents ---------------------------------------------------------------


def read_html_document(stream: IO[bytes], cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """One web page per file, decoded by BOM, declared encoding, <meta charset> or detection."""
    from corpusgen import encoding

    limit = cfg.max_document_chars * 4
    data = stream.read(limit + 1)
    if not data:
        counts[EMPTY_FILE] += 1
        return
    if len(data) <= limit:
        stream.read(1)  # at the end: raises StreamCut when a compressed page was cut short
    if encoding.looks_binary(data[:_DETECT_BYTES]):
        raise StreamCut(BINARY_FILE, NOT_TEXT, whole_file=True)
    if len(data) > limit or (b"\x00" in data and encoding.sniff_unicode(data) is None):
        counts[RECORDS_READ] += 1
        counts[DOCUMENT_TOO_LONG if len(data) > limit else NUL_BYTE] += 1
        return
    declared = None if cfg.encoding in ("auto", "utf-8") else cfg.encoding
    try:
        text, codec = encoding.decode_bytes(data, declared)
    except encoding.DecodeError as exc:
        if exc.reason == encoding.BINARY:
            raise StreamCut(BINARY_FILE, NOT_TEXT, whole_file=True) from None
        detail = str(exc).removeprefix(f"{exc.reason}: ")
        raise StreamCut(UNDECODABLE_FILE, f"{detail}; pass --encoding if you know it", whole_file=True) from None
    counts[RECORDS_READ] += 1
    reason = _check_text(text, cfg)
    if reason:
        counts[reason] += 1
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
    heading lines are dropped (counted). A document holding a line over
    ``max_line_bytes`` is dropped whole (``line_too_long``), never kept without it.
    """
    text_stream = _open_text(stream, cfg, counts)
    if text_stream is None:
        return
    lines: list[bytes] = []
    size = 0
    has_text = False
    reason: str | None = None
    limit = cfg.max_document_chars * 4  # UTF-8 bytes bound the characters from above

    def flush() -> Iterator[str]:
        nonlocal lines, size, has_text, reason
        if has_text:
            counts[RECORDS_READ] += 1
            if reason is None:
                text, reason = _check_bytes(b"\n".join(lines), cfg)
            if reason is None:
                yield text
            else:
                counts[reason] += 1
        lines, size, has_text, reason = [], 0, False, None

    for line in iter_lines(text_stream, cfg.max_line_bytes):
        if line is None:
            has_text = True
            reason = reason or LINE_TOO_LONG
            lines = []
            continue
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
        has_text = has_text or bool(line.strip())
        if reason is not None:
            continue
        size += len(line) + 1
        if size > limit:
            reason, lines = DOCUMENT_TOO_LONG, []
            continue
        lines.append(line)
    yield from flush()


def _json_record(line: bytes):
    try:
        return json.loads(line)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
        # valid JSON with an integer of over 4,300 digits (Python's limit) in some field: only the
        # text field matters here, so integers are kept as their digits
        return json.loads(line, parse_int=str)


def read_jsonl_documents(
    stream: IO[bytes], cfg: BuildConfig, counts: Counter, *, whole_file: bool = True
) -> Iterator[str]:
    """Documents of a JSON-lines file: the ``cfg.text_field`` string of each object.

    ``whole_file=False``: ``stream`` is a later byte range of a UTF-8 file (no head to read).
    """
    text_stream = _open_text(stream, cfg, counts, detect=False) if whole_file else stream
    if text_stream is None:
        return
    field = cfg.text_field
    for line in iter_lines(text_stream, cfg.max_line_bytes):
        if line is not None and not line.strip():
            continue
        counts[RECORDS_READ] += 1
        if line is None:
            counts[LINE_TOO_LONG] += 1
            continue
        if b"\x00" in line:
            counts[NUL_BYTE] += 1
            continue
        try:
            record = _json_record(line)
        except UnicodeDecodeError:
            counts[INVALID_UTF8] += 1
            continue
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            counts[MALFORMED_JSON] += 1
            continue
        if not isinstance(record, dict):
            counts[MALFORMED_JSON] += 1
            continue
        text = record.get(field)
        if text is None:
            counts[MISSING_TEXT_FIELD] += 1
            continue
        if not isinstance(text, str):
            counts[NON_STRING_TEXT] += 1
            continue
        reason = _check_text(text, cfg)
        if reason:
            counts[reason] += 1
            continue
        yield text


# --- readers: tables (by path) ---------------------------------------------------------------


def open_arrow_source(path: str):
    """A random-access pyarrow file for a local or remote (gs://, s3://, hdfs://) path."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    kind = compression_of(path)
    if kind is not None:  # pyarrow would read the compressed bytes as the table's: "magic bytes not found"
        raise OSError(f"{kind}-compressed, and Parquet and Arrow files are read in place: decompress it")
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
        parquet = pq.ParquetFile(source)
        # one row group at a time: batches spanning two would lose the rows of the intact one before
        # a damaged one with it
        for group in range(parquet.num_row_groups):
            yield from parquet.iter_batches(batch_size=1024, row_groups=[group], columns=columns)
        return
    reader = _open_ipc(source)
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    else:
        yield from reader


def table_schema(path: str, fmt: str):
    import pyarrow.parquet as pq

    source = open_arrow_source(path)
    if fmt == "parquet":
        return pq.ParquetFile(source).schema_arrow
    return _open_ipc(source).schema


def _open_ipc(source):
    """A reader of an Arrow IPC file or stream. A file whose footer is gone (a copy cut short) is read
    as the stream its batches are, up to the cut, as a cut stream is: it was unreadable as a whole."""
    import pyarrow as pa

    magic = source.read(len(FEATHER_V1))
    source.seek(0)
    if magic == FEATHER_V1:
        raise pa.ArrowInvalid(FEATHER_V1_FIX)
    if magic[:6] != b"ARROW1":
        return pa.ipc.open_stream(source)
    try:
        return pa.ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(8)  # the magic and its padding
        return pa.ipc.open_stream(source)


def string_column_type(t):
    """The binary type a text column's values are read as, or None when it holds no strings."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_string_view(t) or pa.types.is_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()  # binary values (UTF-8 text stored as bytes) are decoded like strings, strictly
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return pa.large_binary()
    return None


def _text_column_bytes(column, binary) -> list:
    """The values of a text column as bytes (None for a null), its offsets checked first.

    Arrow trusts the offsets an IPC file holds: one damaged to point past the data crashes the
    process that reads the values (or reads other memory). They are checked in the column's binary
    layout, since a full check of a string type also checks UTF-8, which would cost the batch, not a row.
    """
    import pyarrow as pa

    def same_layout(t):  # a cast between these copies nothing
        if pa.types.is_string(t):
            return pa.binary()
        if pa.types.is_large_string(t):
            return pa.large_binary()
        return pa.binary_view() if pa.types.is_string_view(t) else t

    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.dictionary(column.type.index_type, same_layout(column.type.value_type)))
        column.validate(full=True)  # the indices too
        column = column.dictionary_decode()
    else:
        column = column.cast(same_layout(column.type))
        column.validate(full=True)
    return column.cast(binary).to_pylist()


def read_table_documents(path: str, fmt: str, cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """Documents of a Parquet or Arrow file: the ``cfg.text_field`` column, one record per row.

    Values are read as bytes and decoded strictly: Arrow does not check that its strings are
    UTF-8, and one bad value must cost only its row.
    """
    import pyarrow as pa

    field = cfg.text_field
    try:
        schema = table_schema(path, fmt)
    except (OSError, pa.ArrowException) as exc:
        log.warning("%s: not a readable %s file (%s); skipped it", path, fmt.capitalize(), str(exc)[:200])
        counts[UNREADABLE_FILE] += 1
        return
    if schema.names.count(field) > 1:  # pyarrow cannot select either: which one is the text is unknown
        log.warning(
            "%s: %d columns are named %r; skipped it (rename all but one)", path, schema.names.count(field), field
        )
        counts[UNREADABLE_FILE] += 1
        return
    if field not in schema.names:
        whole = MISSING_TEXT_FIELD
    else:
        binary = string_column_type(schema.field(field).type)
        whole = None if binary is not None else NON_STRING_TEXT
    try:
        columns = [field] if whole is None else schema.names[:1]
        for batch in table_batches(path, fmt, columns if fmt == "parquet" else None):
            if whole is not None:
                counts[RECORDS_READ] += batch.num_rows
                counts[whole] += batch.num_rows
                continue
            values = _text_column_bytes(batch.column(batch.schema.get_field_index(field)), binary)
            counts[RECORDS_READ] += batch.num_rows  # a batch that fails its check is the file's damage
            for data in values:
                if data is None:
                    counts[MISSING_TEXT_FIELD] += 1
                    continue
                text, reason = _check_bytes(data, cfg)
                if reason:
                    counts[reason] += 1
                else:
                    yield text
    except (OSError, pa.ArrowException) as exc:
        log.warning("%s: %s file damaged (%s); kept the records before it", path, fmt.capitalize(), str(exc)[:200])
        counts[UNREADABLE_FILE] += 1


def read_parquet_documents(path: str, cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    return read_table_documents(path, "parquet", cfg, counts)


def read_arrow_documents(path: str, cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    return read_table_documents(path, "arrow", cfg, counts)


def expand_hf_dataset_dir(path: str) -> list[str] | None:
    """Data files of a local ``datasets`` ``save_to_disk`` folder, or None if it is not one.

    Raises ``ValueError`` naming the file when its ``dataset_dict.json`` or ``state.json`` is damaged.
    """
    root = Path(path)
    try:
        if (root / "dataset_dict.json").is_file():
            index = root / "dataset_dict.json"
            splits = json.loads(index.read_text())["splits"]
            if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
                raise ValueError(f"{index}: 'splits' must be a list of split names, got {splits!r}")
            out = []
            for split in splits:
                folder = (root / split).resolve()
                if not folder.is_relative_to(root.resolve()):
                    raise ValueError(f"{index}: split {split!r} lies outside the dataset folder")
                if folder == root.resolve():  # ".", "", a link back: the index again, without end
                    raise ValueError(f"{index}: split {split!r} names the dataset folder itself, not a split in it")
                files = _saved_dataset_files(root / split)
                if files is None:  # a split the index names is gone: never leave it out silently
                    raise ValueError(f"{index}: split {split!r} has no save_to_disk folder ({root / split}/state.json)")
                out += files
            return out
        return _saved_dataset_files(root)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a readable save_to_disk folder ({type(exc).__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a readable save_to_disk folder (invalid JSON: {exc})") from None


def _saved_dataset_files(root: Path) -> list[str] | None:
    """The data files a ``Dataset`` folder's ``state.json`` names, or None without one."""
    state = root / "state.json"
    if not state.is_file():
        return None
    out = []
    for f in json.loads(state.read_text()).get("_data_files", []):
        name = f["filename"]
        # state.json is data: a file name leading out of the folder (../, /abs, a link) is refused
        if not isinstance(name, str):
            raise ValueError(f"{state}: data file {name!r} is not a file name")
        if not (root / name).resolve().is_relative_to(root.resolve()):
            raise ValueError(
                f"{state}: data file {name!r} leads outside the dataset folder (a ../ or absolute path, or a "
                "link out of it); only files inside it are read"
            )
        if not (root / name).is_file():  # a shard gone: never leave it out silently
            raise ValueError(f"{state}: data file {name!r} is missing (or not a file)")
        out.append(str(root / name))
    return out


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFormat:
    """One input format: how files are recognised and which function reads them."""

    name: str
    read: Callable[..., Iterator[str]]
    """``read(stream, cfg, counts)`` for stream formats, ``read(path, cfg, counts)`` for tables."""
    suffixes: tuple[str, ...]
    """File name endings (after any compression suffix) that select it under ``input_format=auto``."""
    table: str | None = None
    """``parquet`` or ``arrow`` for formats pyarrow reads by path; None for byte streams."""


FORMATS: dict[str, InputFormat] = {
    f.name: f
    for f in (
        InputFormat("text", read_text_documents, ()),  # the fallback for unknown names
        InputFormat("jsonl", read_jsonl_documents, (".jsonl", ".json", ".ndjson")),
        InputFormat("parquet", read_parquet_documents, (".parquet",), table="parquet"),
        InputFormat("arrow", read_arrow_documents, (".arrow", ".arrows", ".feather", ".ipc"), table="arrow"),
        # a `datasets` save_to_disk folder: resolve_inputs lists its Arrow files
        InputFormat("hf", read_arrow_documents, (), table="arrow"),
        InputFormat("html", read_html_document, (".html", ".htm", ".xhtml", ".shtml")),
    )
}
DEFAULT_FORMAT = "text"
INPUT_FORMATS = ("auto", *FORMATS)


def detect_format(path: str, cfg: BuildConfig) -> str:
    """The input format of one file: the configured one, else by its name (``text`` by default)."""
    if cfg.input_format != "auto":
        return cfg.input_format
    name = strip_compression_suffix(path).lower()
    for fmt in FORMATS.values():
        if fmt.suffixes and name.endswith(fmt.suffixes):
            return fmt.name
    return DEFAULT_FORMAT


class LineRange:
    """The lines of a seekable file whose first byte lies in ``[lo, hi)``, as a stream.

    A range after the first skips the line it starts inside of (that line is its predecessor's),
    and every range reads on past ``hi`` to the end of the line that starts before ``hi``. Ranges
    that tile a file therefore give each of its lines exactly once, whatever the cut points.
    """

    def __init__(self, raw: IO[bytes], lo: int, hi: int) -> None:
        self.raw, self.hi, self.buf, self.done = raw, hi, b"", False
        raw.seek(lo - 1 if lo > 0 else 0)
        self.pos = raw.tell()  # file offset of self.buf's first byte (of the next read's, when empty)
        if lo > 0:  # skip to just after the first newline at or after lo - 1
            while not self.done:
                block = raw.read(_CHUNK)
                nl = block.find(b"\n")
                if not block:
                    self.done = True
                elif nl >= 0:
                    self.buf, self.pos = block[nl + 1 :], self.pos + nl + 1
                    break
                else:
                    self.pos += len(block)
        if self.pos >= hi:  # the first line to start here starts in a later range
            self.done = True

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        data, self.buf = self.buf or self.raw.read(_CHUNK), b""
        if not data:
            self.done = True
            return b""
        start, self.pos = self.pos, self.pos + len(data)
        if self.pos >= self.hi:  # the line holding byte hi - 1 ends at the first newline from there on
            nl = data.find(b"\n", max(0, self.hi - 1 - start))
            if nl >= 0:
                self.done = True
                return data[: nl + 1]
        return data


def splittable(path: str, cfg: BuildConfig, head: bytes) -> bool:
    """Whether a file can be read as byte ranges of whole lines in parallel: uncompressed JSON lines
    whose ``head`` (first bytes) shows UTF-8 text (a BOM, UTF-16/32, binary data, an archive or a
    table need the whole file).
    """
    from corpusgen import encoding

    if detect_format(path, cfg) != "jsonl" or compression_of(path) or cfg.encoding not in ("auto", "utf-8"):
        return False
    if _archive_kind(head) or _table_kind(head) or head.startswith(FEATHER_V1):
        return False  # skipped whole by its first range (``_open_text``): the others must not read it as lines
    unicode = encoding.sniff_unicode(head)
    return (unicode is None or unicode[0] == "utf-8-sig") and not encoding.looks_binary(head[:_DETECT_BYTES])


def read_documents(
    path: str,
    cfg: BuildConfig,
    counts: Counter,
    opener: Opener = open_local,
    byte_range: tuple[int, int] | None = None,
) -> Iterator[str]:
    """Documents of one input file of any format; every file, record and fault counted in ``counts``.

    Never raises for what a file holds: a file that cannot be opened, a corrupt or truncated
    compressed stream and a reader's unexpected failure end the file with a counted reason
    (what was read before stays, the record being read is dropped) and a warning naming it.

    ``byte_range``: only the records whose line starts in ``[lo, hi)`` of a file that
    ``splittable`` accepts; the file is counted once, by the range that starts it.
    """
    fmt = FORMATS[detect_format(path, cfg)]
    if byte_range is None or byte_range[0] == 0:
        counts[FILES_READ] += 1
    before = (counts[RECORDS_READ], counts[DOCUMENTS_READ], counts[MISSING_TEXT_FIELD] + counts[NON_STRING_TEXT])
    file_drops, empty = sum(counts[r] for r in FILE_DROPS), counts[EMPTY_FILE]
    yield from _read_documents(path, fmt, cfg, counts, opener, byte_range)  # never raises
    if byte_range is None and counts[RECORDS_READ] == before[0] and sum(counts[r] for r in FILE_DROPS) == file_drops:
        counts[EMPTY_FILE] += 1  # nothing but whitespace (or a table of no rows)
    if counts[EMPTY_FILE] > empty:  # the count alone would not say which of many inputs it was
        log.warning("%s: no text in it (empty, whitespace only, or a table of no rows); skipped it", path)
    records, docs, no_text = (
        after - was
        for after, was in zip(
            (counts[RECORDS_READ], counts[DOCUMENTS_READ], counts[MISSING_TEXT_FIELD] + counts[NON_STRING_TEXT]), before
        )
    )
    if records and not docs and no_text == records:  # a whole file lost to the text field: say which
        where = "" if byte_range is None else f" (bytes {byte_range[0]}-{byte_range[1]})"
        log.warning(
            "%s%s: none of its %d records has a string %r field; skipped it (set --text-field)",
            path, where, records, cfg.text_field,
        )  # fmt: skip


_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "lzma", b"\x28\xb5\x2f\xfd": "zstd"}


def _compressed_by_magic(path: str, opener: Opener) -> str | None:
    try:
        with closing(opener(path)) as f:
            head = f.read(6)
    except OSError:
        return None
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def _read_documents(path, fmt, cfg, counts, opener, byte_range) -> Iterator[str]:
    try:
        if fmt.table is not None:
            docs = fmt.read(path, cfg, counts)
            for doc in docs:
                counts[DOCUMENTS_READ] += 1
                yield doc
            return
        with closing(opener(path)) as raw:
            if byte_range is None:
                docs = fmt.read(open_decompressed(raw, path), cfg, counts)
            else:  # the first range reads the head as a whole file does (BOM, emptiness); the rest is UTF-8
                docs = read_jsonl_documents(LineRange(raw, *byte_range), cfg, counts, whole_file=byte_range[0] == 0)
            for doc in docs:
                counts[DOCUMENTS_READ] += 1
                yield doc
    except StreamCut as exc:
        kind = _compressed_by_magic(path, opener) if exc.reason == BINARY_FILE and not compression_of(path) else None
        if kind is not None:  # a common slip: a compressed file whose name does not say so
            suffix = next(suf for suf, k in COMPRESSIONS.items() if k == kind)
            exc = StreamCut(
                BINARY_FILE, f"holds {kind}-compressed data; name it {path}{suffix} to read it", whole_file=True
            )
        log.warning("%s: %s; %s", path, exc, "skipped it" if exc.whole_file else "kept the documents before it")
        counts[exc.reason] += 1
    except OSError as exc:
        log.warning("%s: %s; skipped the rest of the file", path, exc)
        counts[UNREADABLE_FILE] += 1
    except Exception as exc:  # a reader's bug: one file must not stop a build, but the log shows it
        log.warning("%s: %s: %s; skipped the rest of the file", path, type(exc).__name__, exc, exc_info=True)
        counts[UNREADABLE_FILE] += 1
