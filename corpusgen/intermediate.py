"""The build's intermediate files: what workers hand each other instead of shuffling documents.

A build moves keys, counts and file names through the runner's shuffles, never the corpus:

* a **document chunk** holds the raw texts read from one stretch of one input file, so the
  costly steps after reading run in parallel even over a single large input file;
* a **token file** holds one chunk's tokenized documents, sorted by split and pool hash in
  record batches, so the pool that owns a range of hashes reads just its slice of each file;
* an **instance part** holds one copy (dupe) of one pool's instances, a record batch per length
  bin, so the copies of a pool are made in parallel and each bin's shards are cut from its batch
  of every copy.

Both are Arrow IPC files (LZ4: written once, read once, fast beats small). Every document
carries its *locator*, ``file index << 40 | position``: its place in the input, which is the
same whatever the chunking, so "the first of several duplicates" means the same document for
any worker count. The position is the document's index in its file, or, for a file read as
byte ranges, its range's first byte plus its index in the range (a range of n bytes holds fewer
than n lines, so positions still grow through the file). This module only encodes and decodes; the pipeline does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from corpusgen.pairing import TokenizedDocument
from corpusgen.partition import SPLITS
from corpusgen.shards import Instances

WORK_DIR = "_work"  # inside the output directory; removed once the manifest is written
DOCS_PER_TOKEN_BATCH = 512
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def locator(file_index: int, position: int) -> int:
    return (file_index << 40) | position


def _to_bytes(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema, options=_OPTIONS) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


# --- document chunks -----------------------------------------------------------------------

_CHUNK_SCHEMA = pa.schema([pa.field("locator", pa.uint64()), pa.field("text", pa.large_string())])


def encode_chunk(locators: Sequence[int], texts: Sequence[str]) -> bytes:
    batch = pa.record_batch([pa.array(locators, pa.uint64()), pa.array(texts, pa.large_string())], _CHUNK_SCHEMA)
    return _to_bytes(_CHUNK_SCHEMA, [batch])


def decode_chunk(source: BinaryIO | bytes) -> tuple[list[int], list[str]]:
    table = pa.ipc.open_file(pa.py_buffer(source) if isinstance(source, bytes) else source).read_all()
    return table.column("locator").to_pylist(), table.column("text").to_pylist()


# --- token files ---------------------------------------------------------------------------------


@dataclass
class PoolDocument:
    """A tokenized document as a pool reads it back."""

    doc: TokenizedDocument
    locator: int
    text: str | None  # kept only when the build writes removed documents


def _token_schema(token_type: pa.DataType, with_text: bool, with_word_starts: bool = False) -> pa.Schema:
    fields = [
        pa.field("key", pa.string()),
        pa.field("locator", pa.uint64()),
        pa.field("pool_hash", pa.uint64()),
        pa.field("ids", pa.large_list(token_type)),
        pa.field("bounds", pa.list_(pa.int32())),
    ]
    fields += [pa.field("text", pa.large_string())] if with_text else []
    # one flag per token of ids, only when the tokenizer gives word starts (BPE, Unigram)
    return pa.schema(fields + ([pa.field("word_starts", pa.large_list(pa.bool_()))] if with_word_starts else []))


def encode_tokens(
    docs: Sequence[tuple[str, int, int, TokenizedDocument, str | None]],
    token_dtype: np.dtype,
    with_text: bool,
) -> tuple[bytes, list[list]]:
    """A token file of ``(split, pool hash, locator, document, text)`` rows and its batch index.

    The index lists ``[split, first hash, last hash, rows]`` per record batch, in file order.
    Word starts are written when the documents carry them (all or none do: one tokenizer).
    """
    order = sorted(range(len(docs)), key=lambda i: (SPLITS.index(docs[i][0]), docs[i][1], docs[i][2]))
    with_word_starts = bool(docs) and docs[0][3].word_starts is not None
    schema = _token_schema(pa.from_numpy_dtype(token_dtype), with_text, with_word_starts)
    batches, index = [], []
    start = 0
    while start < len(order):
        split = docs[order[start]][0]
        end = start
        while end < len(order) and end - start < DOCS_PER_TOKEN_BATCH and docs[order[end]][0] == split:
            end += 1
        rows = [docs[i] for i in order[start:end]]
        ids = [r[3].ids for r in rows]
        bounds = [r[3].bounds.astype(np.int32) for r in rows]
        columns = [
            pa.array([r[3].key for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.uint64()),
            pa.array([r[1] for r in rows], pa.uint64()),
            _list_array(ids, pa.large_list(pa.from_numpy_dtype(token_dtype)), np.int64),
            _list_array(bounds, pa.list_(pa.int32()), np.int32),
        ]
        if with_text:
            columns.append(pa.array([r[4] for r in rows], pa.large_string()))
        if with_word_starts:
            columns.append(_list_array([r[3].word_starts for r in rows], pa.large_list(pa.bool_()), np.int64))
        batches.append(pa.record_batch(columns, schema))
        index.append([split, rows[0][1], rows[-1][1], len(rows)])
        start = end
    return _to_bytes(schema, batches), index


def _list_array(parts: list[np.ndarray], typ: pa.DataType, offset_dtype) -> pa.Array:
    offsets = np.zeros(len(parts) + 1, dtype=offset_dtype)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    values = np.concatenate(parts) if parts else np.zeros(0, typ.value_type.to_pandas_dtype())
    array_type = pa.LargeListArray if pa.types.is_large_list(typ) else pa.ListArray
    return array_type.from_arrays(pa.array(offsets), pa.array(values, typ.value_type))


def batches_in_range(index: Sequence[Sequence[Any]], split: str, lo: int, hi: int) -> list[int]:
    """Record batches of a token file that may hold documents of ``split`` with hash in [lo, hi)."""
    return [i for i, (s, first, last, _) in enumerate(index) if s == split and first < hi and last >= lo]


def decode_pool_documents(source: BinaryIO | bytes, batch_ids: Sequence[int], lo: int, hi: int) -> list[PoolDocument]:
    """The documents of the given record batches whose pool hash lies in [lo, hi)."""
    reader = pa.ipc.open_file(pa.py_buffer(source) if isinstance(source, bytes) else source)
    out: list[PoolDocument] = []
    for b in batch_ids:
        rb = reader.get_batch(b)
        h = rb.column("pool_hash").to_numpy()
        keep = np.flatnonzero((h >= np.uint64(lo)) & (h <= np.uint64(hi - 1)))  # hi may be 2**64
        if not len(keep):
            continue
        keys = rb.column("key").to_pylist()
        locs = rb.column("locator").to_numpy()
        ids_col, bounds_col = rb.column("ids"), rb.column("bounds")
        ids_off = ids_col.offsets.to_numpy()
        ids_val = ids_col.values.to_numpy()
        b_off = bounds_col.offsets.to_numpy()
        b_val = bounds_col.values.to_numpy().astype(np.int64)
        texts = rb.column("text").to_pylist() if "text" in rb.schema.names else None
        starts_val = None
        if "word_starts" in rb.schema.names:
            starts_col = rb.column("word_starts")
            s_off, starts_val = starts_col.offsets.to_numpy(), starts_col.values.to_numpy(zero_copy_only=False)
        for i in keep.tolist():
            doc = TokenizedDocument(
                keys[i], ids_val[ids_off[i] : ids_off[i + 1]].copy(), b_val[b_off[i] : b_off[i + 1]]
            )
            if starts_val is not None:
                doc.word_starts = starts_val[s_off[i] : s_off[i + 1]]
            out.append(PoolDocument(doc, int(locs[i]), texts[i] if texts is not None else None))
    return out


# --- instance parts ----------------------------------------------------------------------------

_PART_FIELDS = tuple(Instances.__dataclass_fields__)


def encode_instance_part(inst: Instances, bins: np.ndarray) -> tuple[bytes, list[list[int]]]:
    """An instance part: ``inst`` as one record batch per length bin (``bins[r]``: row r's bin),
    rows of a bin in their order, and its index ``[bin, rows]`` per batch, bins ascending.

    A batch is one row whose columns are the bin's ``Instances`` fields, flat (``set_sizes`` too),
    so every layout's fields travel without a schema of their own.
    """
    present = [f for f in _PART_FIELDS if getattr(inst, f) is not None]
    schema = pa.schema([pa.field(f, pa.large_list(pa.from_numpy_dtype(getattr(inst, f).dtype))) for f in present])
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    firsts = np.flatnonzero(np.diff(sorted_bins)) + 1
    batches, index = [], []
    for lo, hi in zip([0, *firsts.tolist()], [*firsts.tolist(), len(order)]):
        if hi == lo:
            continue
        part = inst.take(order[lo:hi])
        columns = [_list_array([getattr(part, f).reshape(-1)], schema.field(f).type, np.int64) for f in present]
        batches.append(pa.record_batch(columns, schema))
        index.append([int(sorted_bins[lo]), hi - lo])
    return _to_bytes(schema, batches), index


def decode_instance_batch(source: BinaryIO | bytes, batch: int) -> Instances:
    """Batch ``batch`` (one length bin) of an instance part."""
    rb = pa.ipc.open_file(pa.py_buffer(source) if isinstance(source, bytes) else source).get_batch(batch)
    fields = {f: rb.column(f).values.to_numpy(zero_copy_only=False) for f in rb.schema.names}
    if "set_sizes" in fields:
        fields["set_sizes"] = fields["set_sizes"].reshape(len(fields["lengths"]), -1)
    return Instances(**fields)
