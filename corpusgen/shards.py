"""Shard format v1: writing and reading Arrow IPC shards and the manifest.

A build directory holds ``manifest.json`` (the commit point, written last),
the vocabulary file beside it and ``shards/SPLIT/bin_LLL-HHH/pool-PPPPP-of-QQQQQ.part-III-of-NNN.arrow``
(SPLIT is ``train`` or ``validation``: held-out documents, for evaluation; Hugging Face
``load_dataset("arrow", data_dir=...)`` finds both splits by these names).
Each shard is an Arrow IPC *file* whose record batches are compressed with zstd.
One row per instance:

=====================  ==============================  =========================================
column                 type                            meaning
=====================  ==============================  =========================================
input_ids              list<uint16|uint32>             ``[CLS] A [SEP] B [SEP]``, masks applied
a_len                  uint16                          tokens of ``[CLS] A [SEP]``
masked_positions       list<uint8|uint16>              ascending positions to predict
masked_labels          list<uint16|uint32>             original token at each position
next_sentence_label    int8                            0 B follows A, 1 B random, -100 none
doc_starts             list<uint8|uint16>              packed layouts only: where each document
                                                       segment starts (first 0; see below)
=====================  ==============================  =========================================

``doc_starts`` (``--next-sentence full-sentences|doc-sentences``): segment j of a row is
``[doc_starts[j], doc_starts[j + 1])``, the last runs to the row's end; ``[CLS]`` belongs to the
first segment and the ``[SEP]`` that closes a document's piece to that piece. A reader knows the
column is there from ``manifest["config"]["next_sentence"]`` (``BuildConfig.packed``).
Optional columns, by the build's config: ``dynamic_masking`` keeps ``input_ids`` unmasked with empty
mask lists (the loader draws the masks) and, for word schemes, adds ``word_starts`` list<bool>;
``mask_copies`` N > 1 keeps ``input_ids`` unmasked, makes the mask columns list<list<…>> (N sets per
row) and adds ``masked_inputs`` (what the model is shown at each position of each set).

This module imports neither Beam nor torch: the pipeline writes with it, the
trainer and ``validate`` read with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".corpusgen-build.lock"  # held by a build writing into its folder (pipelines.output)
SHARDS_DIR = "shards"
NSP_IGNORE = -100  # next_sentence_label when the build makes no pairs (next_sentence="none")
COLUMNS = ("input_ids", "a_len", "masked_positions", "masked_labels", "next_sentence_label")
WORD_SCHEMES = ("whole-word", "span")
"""Mask schemes that need word starts: dynamic builds of these store a ``word_starts`` column."""


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def position_dtype(max_seq_length: int) -> np.dtype:
    return np.dtype(np.uint8) if max_seq_length <= 256 else np.dtype(np.uint16)


def shard_schema(
    vocab_size: int, max_seq_length: int, *, mask_copies: int = 1, word_starts: bool = False, doc_starts: bool = False
) -> pa.Schema:
    """The columns of a shard; ``mask_copies`` > 1 nests the mask columns (one list per set) and adds
    ``masked_inputs``; ``word_starts`` adds that column (dynamic builds of word schemes); ``doc_starts``
    that one (packed layouts)."""
    tok = pa.from_numpy_dtype(token_dtype(vocab_size))
    pos = pa.from_numpy_dtype(position_dtype(max_seq_length))
    nest = (lambda t: pa.list_(pa.list_(t))) if mask_copies > 1 else pa.list_
    fields = [
        pa.field("input_ids", pa.list_(tok), nullable=False),
        pa.field("a_len", pa.uint16(), nullable=False),
        pa.field("masked_positions", nest(pos), nullable=False),
        pa.field("masked_labels", nest(tok), nullable=False),
        pa.field("next_sentence_label", pa.int8(), nullable=False),
    ]
    if doc_starts:
        fields.append(pa.field("doc_starts", pa.list_(pos), nullable=False))
    if mask_copies > 1:
        fields.append(pa.field("masked_inputs", nest(tok), nullable=False))
    if word_starts:
        fields.append(pa.field("word_starts", pa.list_(pa.bool_()), nullable=False))
    return pa.schema(fields)


def layout_schema(cfg: Any, vocab_size: int) -> pa.Schema:
    """The schema of a build's shards from its config (a ``BuildConfig`` or the manifest's dict)."""
    from corpusgen.config import PACKED_MODES

    get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
    copies = int(get("mask_copies", 1))
    word_starts = bool(get("dynamic_masking", False)) and get("mask_scheme", "token") in WORD_SCHEMES
    packed = get("next_sentence", "nsp") in PACKED_MODES
    return shard_schema(
        vocab_size, get("max_seq_length", 128), mask_copies=copies, word_starts=word_starts, doc_starts=packed
    )


def masking_layout_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong when the config's ``dynamic_masking`` disagrees with how the shards were masked
    (``stats.masking.layout``, written by the build), else None. A dynamic build stores its rows
    unmasked and the loader draws the masks; read as static it would train on no masks, and static
    rows read as dynamic would be masked twice."""
    layout = ((manifest.get("stats") or {}).get("masking") or {}).get("layout")
    dynamic = bool((manifest.get("config") or {}).get("dynamic_masking"))
    if layout not in ("static", "dynamic") or (layout == "dynamic") == dynamic:
        return None
    stored = "unmasked (layout dynamic)" if layout == "dynamic" else "with their masks (layout static)"
    return f"config.dynamic_masking is {str(dynamic).lower()}, but the build stored its rows {stored}"


def stored_masks_problem(batch: pa.RecordBatch, dynamic: bool) -> str | None:
    """What is wrong when a record batch of a dynamic build holds masks (its rows are stored unmasked),
    else None; a static row may hold none (span or whole-word masking of a short row), so only this
    direction is told from the rows themselves."""
    import pyarrow.compute as pc

    if not dynamic or batch.num_rows == 0:
        return None
    column = batch.column("masked_positions")
    if pa.types.is_list(column.type.value_type):  # mask_copies > 1: a list of sets per row
        column = column.flatten()
    if pc.max(pc.list_value_length(column)).as_py() > 0:
        return "its rows hold masks, but the manifest's config says dynamic_masking (rows stored unmasked)"
    return None


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _gather(values: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenate the variable-length rows ``rows`` of a flat ``values`` array."""
    starts = _offsets(lengths)[:-1][rows]
    lens = lengths[rows]
    total = int(lens.sum())
    if total == 0:
        return values[:0]
    out_starts = _offsets(lens)[:-1]
    index = np.repeat(starts - out_starts, lens) + np.arange(total, dtype=np.int64)
    return values[index]


@dataclass
class Instances:
    """A columnar batch of instances (flat values + per-row lengths).

    ``order_key`` is a seeded 64-bit hash of each instance's origin; shards are
    sorted by it, which shuffles them deterministically. It is not written.
    ``doc_starts`` (flat) with ``num_doc_starts`` (per row) only in packed layouts, else None.
    The optional fields are present only in the layouts that write them: ``word_starts`` (bool per
    token, dynamic builds of word schemes), and for mask copies ``masked_inputs`` (what the model is
    shown at each masked position, parallel to ``masked_positions``) and ``set_sizes`` ((rows, N):
    positions of each set; ``num_masked`` is their sum, each row's sets one after the other).
    """

    input_ids: np.ndarray
    lengths: np.ndarray
    a_len: np.ndarray
    masked_positions: np.ndarray
    num_masked: np.ndarray
    masked_labels: np.ndarray
    next_sentence_label: np.ndarray
    order_key: np.ndarray
    doc_starts: np.ndarray | None = None
    num_doc_starts: np.ndarray | None = None
    word_starts: np.ndarray | None = None
    masked_inputs: np.ndarray | None = None
    set_sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    @classmethod
    def concat(cls, parts: Iterable[Instances]) -> Instances:
        parts = list(parts)
        if not parts:
            raise ValueError("Instances.concat needs at least one part")
        return cls(*(_concat_field([getattr(p, f) for p in parts], f) for f in _FIELDS))

    def take(self, rows: np.ndarray) -> Instances:
        """The rows ``rows`` (an index array), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return Instances(
            input_ids=_gather(self.input_ids, self.lengths, rows),
            lengths=self.lengths[rows],
            a_len=self.a_len[rows],
            masked_positions=_gather(self.masked_positions, self.num_masked, rows),
            num_masked=self.num_masked[rows],
            masked_labels=_gather(self.masked_labels, self.num_masked, rows),
            next_sentence_label=self.next_sentence_label[rows],
            order_key=self.order_key[rows],
            doc_starts=None if self.doc_starts is None else _gather(self.doc_starts, self.num_doc_starts, rows),
            num_doc_starts=None if self.num_doc_starts is None else self.num_doc_starts[rows],
            word_starts=None if self.word_starts is None else _gather(self.word_starts, self.lengths, rows),
            masked_inputs=None if self.masked_inputs is None else _gather(self.masked_inputs, self.num_masked, rows),
            set_sizes=None if self.set_sizes is None else self.set_sizes[rows],
        )

    def to_record_batch(self, schema: pa.Schema) -> pa.RecordBatch:
        def as_list(values: np.ndarray, lengths: np.ndarray, field: str) -> pa.Array:
            typ = schema.field(field).type
            offsets = pa.array(_offsets(lengths).astype(np.int32))
            if pa.types.is_list(typ.value_type):  # mask copies: a list of sets per row
                sets = self.set_sizes
                inner = pa.ListArray.from_arrays(
                    pa.array(_offsets(sets.reshape(-1)).astype(np.int32)),
                    pa.array(values, type=typ.value_type.value_type),
                )
                outer = pa.array((np.arange(len(sets) + 1) * sets.shape[1]).astype(np.int32))
                return pa.ListArray.from_arrays(outer, inner)
            return pa.ListArray.from_arrays(offsets, pa.array(values, type=typ.value_type))

        columns = [
            as_list(self.input_ids, self.lengths, "input_ids"),
            pa.array(self.a_len, type=pa.uint16()),
            as_list(self.masked_positions, self.num_masked, "masked_positions"),
            as_list(self.masked_labels, self.num_masked, "masked_labels"),
            pa.array(self.next_sentence_label, type=pa.int8()),
        ]
        if "doc_starts" in schema.names:
            columns.append(as_list(self.doc_starts, self.num_doc_starts, "doc_starts"))
        if "masked_inputs" in schema.names:
            columns.append(as_list(self.masked_inputs, self.num_masked, "masked_inputs"))
        if "word_starts" in schema.names:
            columns.append(as_list(self.word_starts, self.lengths, "word_starts"))
        return pa.RecordBatch.from_arrays(columns, schema=schema)


_FIELDS = tuple(f for f in Instances.__dataclass_fields__)


def _concat_field(values: list[np.ndarray | None], name: str) -> np.ndarray | None:
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise ValueError(f"Instances.concat: {name} is set in some parts only (packed and unpacked rows mixed)")
    return np.concatenate(values)


def serialize_shard(instances: Instances, schema: pa.Schema, *, zstd_level: int, rows_per_batch: int) -> bytes:
    """One shard as Arrow IPC file bytes, record batches of ``rows_per_batch`` rows, zstd."""
    options = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=zstd_level))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema, options=options) as writer:
        if len(instances) <= rows_per_batch:  # one batch (the default): no copy of the rows
            writer.write_batch(instances.to_record_batch(schema))
        else:
            for start in range(0, len(instances), rows_per_batch):
                rows = np.arange(start, min(start + rows_per_batch, len(instances)))
                writer.write_batch(instances.take(rows).to_record_batch(schema))
    return sink.getvalue().to_pybytes()


def shard_path(split: str, bin_lo: int, bin_hi: int, pool: int, pools: int, index: int, count: int) -> str:
    """Path of a shard relative to the build directory."""
    return (
        f"{SHARDS_DIR}/{split}/bin_{bin_lo:03d}-{bin_hi:03d}/"
        f"pool-{pool:05d}-of-{pools:05d}.part-{index:03d}-of-{count:03d}.arrow"
    )


_POOL_RE = re.compile(r"/pool-(\d+)-of-\d+\.part-")


def shard_pool(path: str) -> int | None:
    """The NSP pool a shard's rows come from, read from its ``shard_path`` name (None: another name)."""
    m = _POOL_RE.search(path)
    return int(m.group(1)) if m else None


@dataclass
class Shard:
    """One shard to write: where it goes and its rows, in file order."""

    path: str
    split: str
    bin: tuple[int, int]
    rows: Instances

    def encode(self, cfg: Any, vocab_size: int) -> tuple[bytes, dict[str, Any]]:
        """The file's bytes and its manifest entry."""
        data = serialize_shard(
            self.rows,
            layout_schema(cfg, vocab_size),
            zstd_level=cfg.zstd_level,
            rows_per_batch=cfg.rows_per_batch,
        )
        entry = {
            "path": self.path,
            "rows": len(self.rows),
            "tokens": self.rows.num_tokens,
            "bin": list(self.bin),
            "bytes": len(data),
            "sha256": sha256_bytes(data),
            "split": self.split,
        }
        return data, entry


def cut_into_shards(instances: Instances, split: str, cfg: Any, *, pool: int = 0, pools: int = 1) -> list[Shard]:
    """The shards of one pool's instances of one split: by length bin, at most ``rows_per_shard`` each.

    Rows are ordered by their seeded ``order_key``, which shuffles them the same way on every run,
    and each bin is cut into equal contiguous parts.
    """
    if not len(instances):
        return []
    bins = cfg.bin_of(instances.lengths.astype(np.int64))
    # by bin, then by order_key (ties: row order); each shard's rows are then one gather of the input
    order = np.lexsort((instances.order_key, bins))
    sorted_bins = bins[order]
    firsts = np.flatnonzero(np.diff(sorted_bins)) + 1
    shards = []
    for first, end in zip([0, *firsts.tolist()], [*firsts.tolist(), len(order)]):
        lo, hi = cfg.bin_range(int(sorted_bins[first]))
        count = shards_in_bin(end - first, cfg)
        for i in range(count):
            a, b = _shard_edges(end - first, count, i)
            rows = instances.take(order[first + a : first + b])
            shards.append(Shard(shard_path(split, lo, hi, pool, pools, i, count), split, (lo, hi), rows))
    return shards


def shards_in_bin(rows: int, cfg: Any) -> int:
    """Shards a bin of ``rows`` rows is cut into: equal parts of at most ``rows_per_shard``."""
    return -(-rows // cfg.rows_per_shard)


def _shard_edges(n: int, count: int, index: int) -> tuple[int, int]:
    return n * index // count, n * (index + 1) // count


def shard_of_bin(instances: Instances, split: str, cfg: Any, *, pool: int, pools: int, index: int) -> Shard:
    """Shard ``index`` of one length bin's rows (all of one bin): the shard ``cut_into_shards`` makes there."""
    lo, hi = cfg.bin_range(int(cfg.bin_of(int(instances.lengths[0]))))
    count = shards_in_bin(len(instances), cfg)
    a, b = _shard_edges(len(instances), count, index)
    order = np.argsort(instances.order_key, kind="stable")  # by order_key, ties in row order
    return Shard(shard_path(split, lo, hi, pool, pools, index, count), split, (lo, hi), instances.take(order[a:b]))


def instance_counters(instances: Instances, split: str, mask_id: int) -> dict[str, int]:
    """The manifest counters that a set of instances implies (what ``validate`` recomputes)."""
    from corpusgen import stats

    inst = instances
    counts = {
        "instances": len(inst),
        f"instances_{split}": len(inst),
        "instance_tokens": inst.num_tokens,
        "nsp_next": int((inst.next_sentence_label == 0).sum()),
        "nsp_random": int((inst.next_sentence_label == 1).sum()),
    }
    row_start = _offsets(inst.lengths)[:-1]
    flat = np.repeat(row_start, inst.num_masked) + inst.masked_positions.astype(np.int64)
    # what the model is shown at each chosen position: stored apart for mask copies, else in the row
    shown = inst.input_ids[flat] if inst.masked_inputs is None else inst.masked_inputs
    counts.update(stats.mask_kinds(shown, inst.masked_labels, mask_id))
    for length, n in enumerate(np.bincount(inst.lengths)):
        if n:
            counts[stats.length_counter(length)] = int(n)
    return counts


def build_manifest(
    cfg: Any,
    *,
    vocab_name: str,
    vocab_sha256: str,
    tokenizer: dict[str, Any],
    entries: list[dict[str, Any]],
    counters: dict[str, int],
    created: str,
    build_seconds: float | None = None,
) -> dict[str, Any]:
    """The manifest of a finished build (the one place its layout is written)."""
    from corpusgen import stats

    manifest = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "vocab": vocab_name,
        "vocab_sha256": vocab_sha256,
        "tokenizer": tokenizer,
        "shards": sorted(entries, key=lambda e: e["path"]),
        "stats": stats.summarize(counters),
        "counters": dict(sorted(counters.items())),
        "created": created,
    }
    if getattr(cfg, "packed", False):
        manifest["stats"]["packing"] = stats.packing_summary(counters, cfg.length_bin_width, cfg.max_seq_length)
    copies = int(getattr(cfg, "mask_copies", 1))
    manifest["stats"]["masking"]["layout"] = (
        "dynamic" if getattr(cfg, "dynamic_masking", False) else ("copies" if copies > 1 else "static")
    )  # dynamic: the counts are of the masks the loader draws at epoch 0; copies: of all the sets
    manifest["stats"]["masking"]["mask_sets"] = copies
    if build_seconds is not None:
        manifest["build_seconds"] = round(build_seconds, 1)
    return manifest


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=1).encode("utf-8")


# --- reading ------------------------------------------------------------------------


def open_shard(path: str | os.PathLike[str]) -> pa.ipc.RecordBatchFileReader:
    """Open a shard for random access to its record batches (memory-mapped when local)."""
    path = os.fspath(path)
    if "://" in path:
        import pyarrow.fs as pafs

        fs, inner = pafs.FileSystem.from_uri(path)
        return pa.ipc.open_file(fs.open_input_file(inner))
    return pa.ipc.open_file(pa.memory_map(path, "r"))


def read_shard(path: str | os.PathLike[str]) -> pa.Table:
    return open_shard(path).read_all()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ManifestError(ValueError):
    """A build directory that cannot be used, with the reason and the fix."""


def load_manifest(build_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json`` of a build directory.

    Every file the manifest names (``vocab`` and each shard ``path``) is checked with
    ``resolve_entry`` here, so no reader ever opens a path that leads outside the build.
    """
    path = Path(build_dir) / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest; point to a finished `corpusgen build` output directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc}); rebuild the data") from None
    except RecursionError:
        raise ManifestError(f"{path}: not a manifest (JSON nested too deep to read); rebuild the data") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: not a manifest (a JSON object is expected); rebuild the data")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{path}: shard format version {version!r}, this corpusgen reads version {FORMAT_VERSION}; "
            "rebuild the data with this corpusgen or use a matching release"
        )
    for key in ("config", "vocab", "shards", "stats", "tokenizer"):
        if key not in manifest:
            raise ManifestError(f"{path}: manifest lacks {key!r}; rebuild the data")
    if not isinstance(manifest["shards"], list) or not all(isinstance(e, dict) for e in manifest["shards"]):
        raise ManifestError(f"{path}: 'shards' must be a list of objects; rebuild the data")
    problem = _manifest_type_problem(manifest)
    if problem:
        raise ManifestError(f"{path}: {problem}; the manifest was edited or damaged: rebuild the data")
    from corpusgen.config import BuildConfig  # here: config's modules are not needed to write shards

    try:
        BuildConfig.from_dict(manifest["config"], source=f"{path}: config")
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{exc}; rebuild the data") from None
    resolve_entry(build_dir, manifest["vocab"], what="vocab")
    for i, entry in enumerate(manifest["shards"]):
        resolve_entry(build_dir, entry.get("path"), what=f"shards[{i}].path")
    return manifest


_ENTRY_INTS = ("rows", "tokens", "bytes")
_TOKENIZER_IDS = ("pad_id", "unk_id", "cls_id", "sep_id", "mask_id")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_type_problem(manifest: dict[str, Any]) -> str | None:
    """What in a manifest has the wrong JSON type or an impossible value (None: nothing), so that every
    reader can trust the structure it reads: counts are integers, ids lie inside the vocabulary."""
    for key in ("config", "stats", "tokenizer"):
        if not isinstance(manifest[key], dict):
            return f"{key!r} must be an object, got {type(manifest[key]).__name__}"
    for key in ("counters", "skipped_inputs"):
        if key in manifest and not isinstance(manifest[key], dict):
            return f"{key!r} must be an object, got {type(manifest[key]).__name__}"
    if not isinstance(manifest.get("vocab_sha256"), str):
        return "'vocab_sha256' must be a string"
    tok = manifest["tokenizer"]
    size = tok.get("vocab_size")
    if not _is_int(size) or size < 1:
        return f"tokenizer.vocab_size must be a positive integer, got {size!r}"
    for key in _TOKENIZER_IDS:
        if key in tok and not (_is_int(tok[key]) and 0 <= tok[key] < size):
            return f"tokenizer.{key} must be an id below vocab_size {size}, got {tok[key]!r}"
    from corpusgen.partition import SPLITS

    seen: dict[Any, int] = {}
    for i, entry in enumerate(manifest["shards"]):
        for key in _ENTRY_INTS:
            if not (_is_int(entry.get(key)) and entry[key] >= 0):
                return f"shards[{i}].{key} must be a non-negative integer, got {entry.get(key)!r}"
        if not (isinstance(entry.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            return f"shards[{i}].sha256 must be the shard's sha256 (64 hex digits), got {entry.get('sha256')!r}"
        if entry.get("split") not in SPLITS:
            return f"shards[{i}].split must be one of {', '.join(SPLITS)}, got {entry.get('split')!r}"
        if isinstance(entry.get("path"), str):
            if entry["path"] in seen:
                return f"shards[{i}] lists {entry['path']} again (shards[{seen[entry['path']]}] is the same file)"
            seen[entry["path"]] = i
        b = entry.get("bin")
        if b is not None and not (isinstance(b, list) and len(b) == 2 and all(_is_int(x) for x in b)):
            return f"shards[{i}].bin must be [low, high] lengths, got {b!r}"
    return None


def resolve_entry(build_dir: str | os.PathLike[str], rel: Any, *, what: str = "entry") -> Path:
    """The file a manifest entry names, refused unless it stays inside the build directory.

    A manifest is data, never a pointer to anywhere: ``rel`` must be a relative path without
    ``..`` components or a URL, and the file it resolves to (symbolic links followed) must lie
    under ``build_dir``. Raises ``ManifestError`` naming the entry (``what``) otherwise.
    """
    manifest = Path(build_dir) / MANIFEST_NAME

    def refuse(why: str) -> ManifestError:
        return ManifestError(
            f"{manifest}: {what} {rel!r} {why}; a manifest may only name files inside its build directory "
            "(rebuild the data, or fix the entry)"
        )

    if not isinstance(rel, str) or not rel:
        raise refuse("is not a file name")
    if "\\" in rel or "\0" in rel or "://" in rel:
        raise refuse("is not a plain relative path")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).drive or PureWindowsPath(rel).is_absolute():
        raise refuse("is an absolute path")
    if ".." in PurePosixPath(rel).parts:
        raise refuse("contains '..'")
    root = Path(build_dir).resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root) or target == root:
        raise refuse(f"resolves to {target}, outside the build directory")
    return Path(build_dir) / rel


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not support fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` whole, durably, or not at all.

    Written under a hidden temporary name (``.NAME.tmp-PID``) in the same folder, flushed and
    fsync'ed, renamed over ``path``, then the folder is fsync'ed so the rename survives a power
    loss. An exception inside the block removes the temporary file and leaves ``path`` untouched;
    a killed process leaves the temporary file, which ``remove_stale_temps`` clears.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a local file so that readers see either nothing or all of it (see ``atomic_writer``)."""
    with atomic_writer(path) as f:
        f.write(data)


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files ``atomic_writer`` left in ``folder`` when a process was killed.

    Call it where no other process writes into ``folder`` at the same time (a run's start).
    """
    folder = Path(folder)
    stale = sorted(p for p in folder.glob(f".*{TMP_MARK}*") if p.is_file() and p.name.rsplit(TMP_MARK, 1)[1].isdigit())
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        _fsync_dir(folder)
    return stale


def write_build(
    build_dir: str | os.PathLike[str],
    splits: dict[str, Instances],
    cfg: Any,
    *,
    vocab_name: str,
    vocab_bytes: bytes,
    tokenizer: dict[str, Any],
    counters: dict[str, int] | None = None,
    created: str = "1970-01-01T00:00:00Z",
) -> dict[str, Any]:
    """Write a complete local build (shards, vocabulary, manifest last) from in-memory instances.

    The Beam pipeline writes builds at scale with the same ``cut_into_shards`` / ``Shard.encode`` /
    ``build_manifest``; this writes one from one process, for instances made in Python (synthetic
    data for tests and benchmarks, or a user's own). ``counters`` adds to those the instances imply.
    """
    from collections import Counter

    out = Path(build_dir)
    atomic_write_bytes(out / vocab_name, vocab_bytes)
    entries = []
    total: Counter = Counter(counters or {})
    tables = None
    if getattr(cfg, "dynamic_masking", False):
        from corpusgen.masking import build_vocab_tables, shard_mask_counters

        tables = build_vocab_tables(vocab_name, vocab_bytes, cfg.do_lower_case)
    for split, inst in splits.items():
        total.update(instance_counters(inst, split, tokenizer["mask_id"]))
        for shard in cut_into_shards(inst, split, cfg):
            if tables is not None:  # the masks the loader draws at epoch 0, measured
                r = shard.rows
                total.update(shard_mask_counters(r.input_ids, r.lengths, r.word_starts, shard.path, cfg, tables))
            data, entry = shard.encode(cfg, tokenizer["vocab_size"])
            atomic_write_bytes(out / shard.path, data)
            entries.append(entry)
    manifest = build_manifest(
        cfg,
        vocab_name=vocab_name,
        vocab_sha256=sha256_bytes(vocab_bytes),
        tokenizer=tokenizer,
        entries=entries,
        counters=dict(total),
        created=created,
    )
    atomic_write_bytes(out / MANIFEST_NAME, encode_manifest(manifest))
    return manifest
