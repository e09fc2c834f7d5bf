"""Resolve and pre-check a build's inputs before any work starts.

Globs, folders (recursively), local Hugging Face ``save_to_disk`` folders and any
Beam filesystem path (gs://, s3://, hdfs://) become a sorted list of files. A
pattern that matches nothing, or a text field that the first file lacks, stops
the build here with one line naming the input and the fix.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from itertools import islice

from apache_beam.io.filesystems import FileSystems

from corpusgen import readers
from corpusgen.config import BuildConfig


class InputError(ValueError):
    """An input that cannot be built from, with the path and the fix."""


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def resolve_inputs(patterns: list[str], cfg: BuildConfig) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        if "://" not in pattern and os.path.isdir(pattern):
            hf = readers.expand_hf_dataset_dir(pattern)
            if hf is not None:
                files += hf
                continue
            found = sorted(
                os.path.join(root, name)
                for root, dirs, names in os.walk(pattern)
                for name in names
                if not name.startswith(".")
                and not any(
                    part.startswith(".") for part in os.path.relpath(root, pattern).split(os.sep) if part != "."
                )
            )
            if not found:
                raise InputError(f"{pattern}: folder holds no files; point to the input files or a glob")
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
    # One file named twice (by two patterns) is read once.
    return list(dict.fromkeys(files))


def check_inputs(files: list[str], cfg: BuildConfig) -> None:
    """Stop early on a configuration that cannot fit the data (a missing text field)."""
    by_format: dict[str, str] = {}
    for f in files:
        by_format.setdefault(readers.detect_format(f, cfg), f)
    field = cfg.text_field
    if "jsonl" in by_format:
        path = by_format["jsonl"]
        keys: Counter = Counter()
        records = 0
        try:
            with FileSystems.open(path) as stream:
                for line in islice(readers.iter_lines(stream, cfg.max_line_bytes, Counter()), 200):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        records += 1
                        keys.update(record.keys())
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc}); check the file") from None
        if records and field not in keys:
            seen = ", ".join(k for k, _ in keys.most_common(8))
            raise InputError(f"{path}: no record has the text field {field!r} (fields: {seen}); pass --text-field NAME")
    for fmt in ("parquet", "arrow"):
        if fmt in by_format:
            path = by_format[fmt]
            try:
                schema = readers.table_schema(path, fmt)
            except Exception as exc:  # pyarrow raises several types for a non-table file
                raise InputError(
                    f"{path}: not a readable {fmt} file ({str(exc)[:150]}); check --input-format"
                ) from None
            if field not in schema.names:
                raise InputError(
                    f"{path}: no column {field!r} (columns: {', '.join(schema.names[:10])}); pass --text-field NAME"
                )
