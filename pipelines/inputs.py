"""Resolve and pre-check a build's inputs before any work starts.

Globs, folders (recursively), local Hugging Face ``save_to_disk`` folders and any
Beam filesystem path (gs://, s3://, hdfs://) become a sorted list of files. A
pattern that matches nothing, or a text field that the first file lacks, stops
the build here with one line naming the input and the fix. Hidden files and
folders (names starting with ".") inside an input folder are skipped, and each is
reported as ``hidden_file``. Files are opened with ``open_raw`` (Beam's
filesystems, bytes as stored) and read by ``corpusgen.readers``.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from itertools import islice

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpusgen import readers
from corpusgen.config import BuildConfig
from corpusgen.shards import MANIFEST_NAME
from corpusgen.stats import (
    DUPLICATE_INPUT,
    EARLIER_BUILD,
    HIDDEN_FILE,
    INSIDE_OUTPUT,
    LINKED_FOLDER_SEEN,
    NOT_REGULAR_FILE,
    UNSUPPORTED_FORMAT,
)


class InputError(ValueError):
    """An input that cannot be built from, with the path and the fix."""


def open_raw(path: str):
    """The raw bytes of a file on any Beam filesystem (the readers decompress them themselves)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _is_build(folder: str) -> bool:
    """Whether ``folder`` holds a corpusgen build (its manifest.json names shards and a format version)."""
    path = os.path.join(folder, MANIFEST_NAME)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read(64 << 20))
    except (OSError, ValueError, RecursionError):  # no build's manifest
        return False
    return isinstance(manifest, dict) and "format_version" in manifest and "shards" in manifest


def _walk_folder(folder: str, skipped: dict[str, list[str]]) -> list[str]:
    """Files under ``folder``; hidden files and folders are left out and listed in ``skipped``.

    Linked folders are followed (a corpus is often a folder of links to where its parts live); a link
    back to a folder already walked (a loop, or the same folder twice) is listed as ``linked_folder_seen``.
    A ``datasets`` save_to_disk folder (``folder`` itself, or one inside) gives its Arrow data files.
    """
    found = []
    seen = {os.path.realpath(folder)}
    if _is_build(folder):
        raise InputError(
            f"{folder}: a corpusgen build (shards and manifest.json), not text; pass the corpus it was built from"
        )
    for root, dirs, names in os.walk(folder, followlinks=True):
        if root != folder and _is_build(root):  # an earlier build's shards would read as binary text
            skipped.setdefault(EARLIER_BUILD, []).append(root + os.sep)
            dirs[:] = []
            continue
        try:  # a `datasets` save_to_disk folder: its data files, not its JSON metadata
            hf = readers.expand_hf_dataset_dir(root)
        except ValueError as exc:
            raise InputError(f"{exc}; re-save it with save_to_disk or point to its .arrow files") from None
        if hf is not None:
            found += hf
            dirs[:] = []
            continue
        keep = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(root, d))
            if d.startswith("."):
                skipped.setdefault(HIDDEN_FILE, []).append(os.path.join(root, d) + os.sep)
            elif real in seen:
                skipped.setdefault(LINKED_FOLDER_SEEN, []).append(os.path.join(root, d) + os.sep)
            else:
                seen.add(real)
                keep.append(d)
        dirs[:] = keep
        for name in names:
            path = os.path.join(root, name)
            if name.startswith("."):
                skipped.setdefault(HIDDEN_FILE, []).append(path)
            else:
                found.append(path)
    return sorted(found)


def resolve_inputs(patterns: list[str], cfg: BuildConfig, skipped: dict[str, list[str]] | None = None) -> list[str]:
    """The files to read, sorted; ``skipped`` (when given) gets the paths left out, by reason."""
    skipped = {} if skipped is None else skipped
    files: list[str] = []
    for pattern in patterns:
        if "://" not in pattern and os.path.isdir(pattern):
            found = _walk_folder(pattern, skipped)
            if not found:
                hidden = f" ({len(skipped.get(HIDDEN_FILE, []))} hidden entries skipped)" if skipped else ""
                raise InputError(f"{pattern}: folder holds no files{hidden}; point to the input files or a glob")
            files += found
            continue
        if "://" not in pattern and not _is_glob(pattern) and not os.path.exists(pattern):
            raise InputError(f"{pattern}: no such file; check the path")
        try:
            matched = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
        except Exception as exc:  # Beam raises BeamIOError or filesystem-specific errors
            raise InputError(
                f"{pattern}: cannot list ({str(exc).splitlines()[0][:200]}); check the path and credentials"
            ) from None
        if not matched:
            raise InputError(
                f"{pattern}: no input matched; check the path, or quote the glob so the shell does not expand it"
            )
        files += sorted(matched)
    files = _once_each(files, skipped)
    if cfg.input_format == "auto":
        # A CSV/TSV read as plain text would give its header, quotes and ids as sentences.
        tables = [f for f in files if readers.strip_compression_suffix(f).lower().endswith(UNSUPPORTED_SUFFIXES)]
        if tables:
            skipped.setdefault(UNSUPPORTED_FORMAT, []).extend(tables)
            files = [f for f in files if f not in set(tables)]
            if not files:
                raise InputError(
                    f"{tables[0]}: CSV/TSV is not an input format; convert it to JSON lines or Parquet "
                    "(a text column), or pass --input-format text to read it as plain text"
                )
    return files


def _once_each(files: list[str], skipped: dict[str, list[str]]) -> list[str]:
    """``files`` with each regular file once, from one ``stat`` of each local file.

    A path named twice, or a local file named again by another spelling or a link (same device and
    inode), is read under its first name; the others are listed as ``duplicate_input``. A local path
    that is no regular file (a named pipe, socket or device, which a read would wait on forever) is
    listed as ``not_regular_file``, and refused when nothing else is left.
    """
    kept: list[str] = []
    first: dict = {}
    for f in files:
        key: object = f
        if "://" not in f:
            try:
                st = os.stat(f)
                key = (st.st_dev, st.st_ino)
            except OSError:  # gone or unreadable: the reader counts it
                key = os.path.abspath(f)
            else:
                if not stat.S_ISREG(st.st_mode):
                    skipped.setdefault(NOT_REGULAR_FILE, []).append(f)
                    continue
        if key in first:
            skipped.setdefault(DUPLICATE_INPUT, []).append(f)
        else:
            first[key] = f
            kept.append(f)
    if files and not kept and skipped.get(NOT_REGULAR_FILE):
        raise InputError(f"{files[0]}: not a regular file (a named pipe, socket or device); give files to read")
    return kept


UNSUPPORTED_SUFFIXES = (".csv", ".tsv")  # left out (and listed) under input_format auto
TABLE_FILES_PROBED = 8  # files of a table format whose schema check_inputs tries before it gives up


def leave_out_output(files: list[str], output: str, skipped: dict[str, list[str]]) -> list[str]:
    """``files`` without those under the build's own ``output`` folder (an input folder holding it
    would otherwise read an earlier build's shards as text), listed in ``skipped`` as ``inside_output``."""
    if "://" in output:
        return files
    out = os.path.realpath(output) + os.sep
    inside = [f for f in files if "://" not in f and os.path.realpath(f).startswith(out)]
    if not inside:
        return files
    skipped.setdefault(INSIDE_OUTPUT, []).extend(inside)
    kept = [f for f in files if f not in set(inside)]
    if not kept:
        raise InputError(f"{output}: every input lies inside the output folder; build into another folder")
    return kept


def check_inputs(files: list[str], cfg: BuildConfig) -> None:
    """Stop early on a configuration that cannot fit the data (a missing text field)."""
    by_format: dict[str, str] = {}
    table_files: dict[str, list[str]] = {}
    for f in files:
        name = readers.detect_format(f, cfg)
        by_format.setdefault(name, f)
        if readers.FORMATS[name].table is not None:
            table_files.setdefault(name, []).append(f)
    field = cfg.text_field
    if "jsonl" in by_format:
        path = by_format["jsonl"]
        keys: Counter = Counter()
        records = 0
        try:
            with open_raw(path) as raw:
                stream = readers.open_decompressed(raw, path)
                for line in islice(readers.iter_lines(stream, cfg.max_line_bytes), 200):
                    try:
                        record = json.loads(line) if line is not None else None
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(record, dict):
                        records += 1
                        keys.update(record.keys())
        except readers.StreamCut:
            pass  # a damaged file is the build's to count; the records before the fault were seen
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc}); check the file") from None
        if records and field not in keys:
            seen = ", ".join(k for k, _ in keys.most_common(8))
            raise InputError(f"{path}: no record has the text field {field!r} (fields: {seen}); pass --text-field NAME")
    for name, candidates in table_files.items():
        fmt = readers.FORMATS[name]
        # The first readable one of a few: a damaged file is the build's to count (unreadable_file);
        # none readable among them is a wrong --input-format rather than damage.
        schema, first_error = None, None
        for path in candidates[:TABLE_FILES_PROBED]:
            try:
                schema = readers.table_schema(path, fmt.table)
                break
            except Exception as exc:  # pyarrow raises several types for a non-table file
                first_error = first_error or (path, exc)
        if schema is None:
            bad, exc = first_error
            fix = "" if readers.compression_of(bad) or readers.FEATHER_V1_FIX in str(exc) else "; check --input-format"
            raise InputError(f"{bad}: not a readable {fmt.table} file ({str(exc)[:150]}){fix}") from None
        if field not in schema.names:
            raise InputError(
                f"{path}: no column {field!r} (columns: {', '.join(schema.names[:10])}); pass --text-field NAME"
            )
        if schema.names.count(field) > 1:
            raise InputError(f"{path}: {schema.names.count(field)} columns are named {field!r}; rename all but one")
        kind = schema.field(field).type
        if readers.string_column_type(kind) is None:  # every row would be dropped as non_string_text
            raise InputError(
                f"{path}: column {field!r} holds {kind}, not text (strings or UTF-8 bytes); "
                "pass --text-field NAME of a text column"
            )
