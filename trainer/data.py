"""Streaming BERT batches from a build's shards (format v1, ``corpusgen.shards``).

A batch is a dict of CPU tensors (B rows, T = longest row of the batch rounded up to a multiple
of 8, P = most predictions of a row in the batch rounded up to a multiple of 8):

======================  =======  ======  ======================================================
key                     shape    dtype   meaning
======================  =======  ======  ======================================================
input_ids               (B, T)   int64   ``[CLS] A [SEP] B [SEP]`` with masks applied, 0-padded
token_type_ids          (B, T)   int64   0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``, 0 on padding
attention_mask          (B, T)   bool    True on real tokens
masked_positions        (B, P)   int64   ascending positions to predict, 0-padded
masked_labels           (B, P)   int64   original token at each position, -100 on padding
masked_valid            (B, P)   bool    True where masked_positions/labels hold a prediction
next_sentence_label     (B,)     int64   0 B follows A, 1 B random, -100 no NSP in this build
doc_ids                 (B, T)   int64   full-sentences builds only: the document piece of each
                                         position within its row (0, 1, …), -1 on padding
position_ids            (B, T)   int64   full-sentences builds only: positions restart at 0 at
                                         each piece, as if each document were its own row
======================  =======  ======  ======================================================

``doc_ids`` let the model keep attention inside each document of a packed row (``trainer.model``);
a doc-sentences row holds one document, so ``attention_mask`` already does.

How rows reach a batch, and why:

* Work units are (shard, record batch) pairs, cut into row ranges when there are fewer units
  than consumers (DDP ranks x DataLoader workers), so even a build of a few shards spreads over
  every consumer. Each epoch permutes the units with ``(seed, epoch)``; consumer ``c`` of ``C``
  takes every C-th unit: within an epoch no row is read twice and none is skipped.
* A consumer streams its units through one shuffle buffer per length bin (the build writes one
  bin per shard) and draws each batch from a single bin, so padding stays small; the bin is
  drawn in proportion to the rows it holds, so rows of every length leave the buffer equally fast.
* Everything random derives from ``seed``, the epoch and the consumer, and the buffer holds only
  row *indices*. That makes the state of a consumer a function of how many batches it has
  produced: resuming replays the index bookkeeping without reading data, then loads only the
  few units still in the buffer. The state of a loader is one integer (batches consumed).
* Masks: a static build's rows carry theirs. A ``mask_copies`` N build stores N mask sets per row
  and a row read in epoch e is shown set ``e % N``. A ``dynamic_masking`` build stores unmasked rows
  and each batch is masked here by ``corpusgen.masking.mask_rows`` (the build's functions, scheme and
  rates), every row from its own stream keyed by (the build's ``random_seed``, the epoch the row was
  read in, its shard, its row in the shard): the masks follow from the data alone (the same for any
  trainer seed, worker count or resume), differ between epochs, and those of epoch 0 are the ones
  the build measured for its manifest.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables, build_vocab_tables, mask_rows, row_keys, shard_key
from corpusgen.shards import (
    MANIFEST_NAME,
    NSP_IGNORE,
    ManifestError,
    load_manifest,
    masking_layout_problem,
    open_shard,
    resolve_entry,
    sha256_file,
    stored_masks_problem,
)
from corpusgen.tokenizer import SubwordTokenizer, VocabError, VocabFile
from trainer.model import IGNORE

STATE_VERSION = 1


def round_up(n: int, k: int = 8) -> int:
    return max(k, -(-n // k) * k)


# --- the build --------------------------------------------------------------------------


def load_build(data_dir: str | os.PathLike[str], expect_vocab_sha256: str | None = None) -> dict[str, Any]:
    """The manifest of a build, after checking what the trainer relies on.

    Raises ``ManifestError`` (one line: what is wrong and the fix) for another format version, a
    file entry leading outside the build, a build config this corpusgen does not know, a
    vocabulary file missing or not matching the manifest's sha256 (or ``expect_vocab_sha256``,
    the vocabulary a checkpoint was trained with), and missing or truncated shards. Shard
    contents are verified against their sha256 later, by the loader, before first use.
    """
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    build_config(manifest, data_dir)
    vocab = resolve_entry(data_dir, manifest["vocab"], what="vocab")
    if not vocab.is_file():
        raise ManifestError(f"{vocab}: vocabulary named by the manifest is missing; copy it back or rebuild the data")
    digest = sha256_file(vocab)
    if digest != manifest.get("vocab_sha256"):
        raise ManifestError(
            f"{vocab}: sha256 {digest[:12]}… does not match the manifest's {str(manifest.get('vocab_sha256'))[:12]}…; "
            "the shards were built with another vocabulary: rebuild the data or restore the original file"
        )
    try:
        wp = SubwordTokenizer(VocabFile(vocab.name, vocab.read_bytes()), manifest["config"].get("do_lower_case"))
        problems = wp.entry_problems(manifest["tokenizer"])
    except VocabError:  # a vocabulary the tokenizer cannot read: the rows still train (as before)
        problems = []
    problems.append(masking_layout_problem(manifest))
    if any(problems):
        problem = next(p for p in problems if p)
        raise ManifestError(f"{data_dir / MANIFEST_NAME}: {problem}; the manifest was edited: rebuild the data")
    if expect_vocab_sha256 is not None and digest != expect_vocab_sha256:
        raise ManifestError(
            f"{vocab}: vocabulary sha256 {digest[:12]}… differs from the checkpoint's {expect_vocab_sha256[:12]}…; "
            "resume on data built with the same vocabulary, or start a new run in another --out"
        )
    for i, entry in enumerate(manifest["shards"]):
        path = resolve_entry(data_dir, entry["path"], what=f"shards[{i}].path")
        if not path.is_file():
            raise ManifestError(f"{path}: shard listed in the manifest is missing; rebuild or restore the data")
        if "bytes" in entry and path.stat().st_size != entry["bytes"]:
            raise ManifestError(
                f"{path}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}; "
                "the shard is damaged: run `corpusgen validate` and rebuild"
            )
        if not isinstance(entry.get("sha256"), str):
            raise ManifestError(f"{path}: the manifest gives no sha256 for this shard; rebuild the data")
    return manifest


def build_config(manifest: dict[str, Any], data_dir: str | os.PathLike[str]) -> BuildConfig:
    """The build's config as the typed ``BuildConfig`` (one set of defaults and checks for everyone)."""
    source = str(Path(data_dir) / MANIFEST_NAME)
    try:
        return BuildConfig.from_dict(manifest["config"], source=source)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{source}: config not readable by this corpusgen ({exc}); rebuild the data") from None


def verify_shard(path: str, sha256: str) -> None:
    """Stop with the shard's name unless its bytes hash to the manifest's sha256 (streamed, 1 MiB blocks)."""
    digest = sha256_file(path)
    if digest != sha256:
        raise ManifestError(
            f"{path}: sha256 {digest[:12]}… differs from the manifest's {sha256[:12]}…; the shard is damaged "
            "or replaced: run `corpusgen validate` and rebuild or restore it"
        )


def no_rows_message(manifest: dict[str, Any], data_dir: Path, split: str) -> str:
    if split != "train":
        splits = sorted({e.get("split", "train") for e in manifest["shards"]})
        return f"{data_dir}: no {split!r} rows in the manifest (its splits: {', '.join(splits) or 'none'})"
    drops = manifest.get("stats", {}).get("drops") or {}
    top = ", ".join(f"{k} {v}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1])[:5])
    held_out = sum(e["rows"] for e in manifest["shards"] if e.get("split") == "validation")
    if held_out:
        fraction = manifest.get("config", {}).get("heldout_fraction")
        return (
            f"{data_dir}: the build has no training instances, only {held_out} held-out ones "
            f"(heldout_fraction {fraction}; drops: {top or 'none recorded'}); rebuild with more input, "
            "the right input options or a smaller --heldout-fraction"
        )
    return (
        f"{data_dir}: the build has no training instances; see its manifest's drops "
        f"({top or 'none recorded'}) and rebuild with the right input options"
    )


@dataclass(frozen=True)
class Units:
    """Work units as parallel arrays (cheap to pickle to DataLoader workers)."""

    shard: np.ndarray  # index into ShardDataset.paths
    batch: np.ndarray  # record batch within the shard
    lo: np.ndarray  # first row within the record batch
    rows: np.ndarray  # rows in the unit
    bin: np.ndarray  # index into ShardDataset.bins
    offset: np.ndarray  # rows of the shard before the unit's record batch

    def __len__(self) -> int:
        return len(self.rows)

    def split(self, parts_at_least: int) -> Units:
        """Cut units into row ranges until there are at least ``parts_at_least`` of them."""
        if len(self) >= parts_at_least:
            return self
        k = -(-parts_at_least // max(len(self), 1))
        out: list[tuple[int, int, int, int, int, int]] = []
        for s, b, lo, n, bn, o in zip(self.shard, self.batch, self.lo, self.rows, self.bin, self.offset, strict=True):
            step = -(-int(n) // k)
            out += [(s, b, lo + a, min(step, n - a), bn, o) for a in range(0, int(n), step)]
        return Units(*(np.array(col, dtype=np.int64) for col in zip(*out, strict=True)))


def _record_batch_rows(path: str, rows: int, rows_per_batch: int) -> list[int]:
    try:  # only the footer (record batch count) is read here; rows are read after verify_shard
        reader = open_shard(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(
            f"{path}: not a readable Arrow IPC shard ({exc}); run `corpusgen validate` and rebuild"
        ) from None
    n = reader.num_record_batches
    if n == -(-rows // rows_per_batch):  # the layout serialize_shard writes: full batches, last one partial
        return [min(rows_per_batch, rows - i * rows_per_batch) for i in range(n)]
    counts = [reader.get_batch(i).num_rows for i in range(n)]  # another writer: read the real counts
    if sum(counts) != rows:
        raise ManifestError(f"{path}: {sum(counts)} rows, the manifest says {rows}; rebuild the data")
    return counts


# --- dense rows -------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows as dense arrays: ids/mpos/mlab right-padded to fixed widths.

    The optional fields are what masking needs where the rows do not carry their masks: for mask
    copies the N sets (``cpos``/``clab``/``cinp``: positions, labels, what is shown), for dynamic
    masking the row's place (``shard_row``, ``shard_key``) and, for word schemes, ``wstart``.
    """

    ids: np.ndarray  # (n, W)  uint16|uint32
    length: np.ndarray  # (n,)    int32
    a_len: np.ndarray  # (n,)    int32
    mpos: np.ndarray  # (n, Pw) uint8|uint16
    mlab: np.ndarray  # (n, Pw) uint16|uint32
    nmask: np.ndarray  # (n,)    int32
    nsp: np.ndarray  # (n,)    int8
    seg: np.ndarray | None = None  # (n, W) uint8|uint16 full-sentences: document piece of each position
    cpos: np.ndarray | None = None  # (n, N, Pw) mask copies: every set's positions
    clab: np.ndarray | None = None  # (n, N, Pw)             labels
    cinp: np.ndarray | None = None  # (n, N, Pw)             what the model is shown
    cn: np.ndarray | None = None  # (n, N) int32             predictions per set
    wstart: np.ndarray | None = None  # (n, W) bool dynamic, word schemes: stored word starts
    shard_row: np.ndarray | None = None  # (n,) int64 dynamic: row within its shard
    shard_key: np.ndarray | None = None  # (n,) uint64 dynamic: masking.shard_key of its shard

    def present(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    @classmethod
    def empty_like(cls, other: Rows, n: int) -> Rows:
        return cls(**{f: np.empty((n, *getattr(other, f).shape[1:]), getattr(other, f).dtype) for f in other.present()})


def _dense_list(arr: pa.ListArray, width: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as an (n, width) zero-padded matrix and the row lengths, without a Python loop."""
    offsets = arr.offsets.to_numpy().astype(np.int64)  # absolute into arr.values, also for a sliced array
    values = arr.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]  # bool: a copy
    lengths = np.diff(offsets)
    n = len(lengths)
    if n and lengths.max() > width:
        raise ManifestError(f"a row has {lengths.max()} {what}, more than the build's limit {width}; rebuild the data")
    out = np.zeros((n, width), dtype=values.dtype)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(values)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    out[rows, cols] = values
    return out, lengths.astype(np.int32)


def segments_from_doc_starts(starts: pa.ListArray, width: int) -> np.ndarray:
    """(n, width) index of the document piece each position belongs to, from the ``doc_starts`` column."""
    offsets = starts.offsets.to_numpy().astype(np.int64)
    values = starts.values.to_numpy()[offsets[0] : offsets[-1]].astype(np.int64)
    n = len(offsets) - 1
    # a piece holds a token and its [SEP] at least: at most width / 2 pieces, so uint8 up to 512
    marks = np.zeros((n, width + 1), dtype=np.uint8 if width <= 512 else np.uint16)
    rows = np.repeat(np.arange(n), np.diff(offsets))
    keep = values > 0  # the first piece starts at 0: no step there
    np.add.at(marks, (rows[keep], values[keep]), 1)
    return np.cumsum(marks[:, :width], axis=1, dtype=marks.dtype)


def _dense_sets(arr: pa.ListArray, copies: int, width: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A list<list> mask column of ``copies`` sets per row as (n, copies, width) and (n, copies)."""
    outer = arr.offsets.to_numpy().astype(np.int64)
    if np.any(np.diff(outer) != copies):
        raise ManifestError(f"a row holds other than {copies} mask sets; rebuild the data")
    dense, lengths = _dense_list(arr.values.slice(outer[0], outer[-1] - outer[0]), width, what)
    return dense.reshape(len(arr), copies, width), lengths.reshape(len(arr), copies)


def rows_from_record_batch(
    rb: pa.RecordBatch, width: int, predictions: int, copies: int = 1, segments: bool = False
) -> Rows:
    """Dense rows of a record batch; ``copies`` > 1: all mask sets (set 0 in place);
    ``segments``: also each position's document piece (full-sentences)."""
    ids, length = _dense_list(rb.column("input_ids"), width, "tokens")
    sets: dict[str, np.ndarray] = {}
    if copies > 1:  # set 0 until the batch's epochs pick theirs (ShardDataset._masked)
        sets["cpos"], sets["cn"] = _dense_sets(rb.column("masked_positions"), copies, predictions, "predictions")
        sets["clab"], _ = _dense_sets(rb.column("masked_labels"), copies, predictions, "labels")
        sets["cinp"], _ = _dense_sets(rb.column("masked_inputs"), copies, predictions, "inputs")
        mpos, mlab, nmask = sets["cpos"][:, 0], sets["clab"][:, 0], sets["cn"][:, 0]
    else:
        mpos, nmask = _dense_list(rb.column("masked_positions"), predictions, "predictions")
        mlab, _ = _dense_list(rb.column("masked_labels"), predictions, "labels")
    if "word_starts" in rb.schema.names:
        sets["wstart"] = _dense_list(rb.column("word_starts"), width, "word starts")[0]
    if segments:
        sets["seg"] = segments_from_doc_starts(rb.column("doc_starts"), width)
    return Rows(
        ids=ids,
        length=length,
        a_len=rb.column("a_len").to_numpy().astype(np.int32),
        mpos=mpos,
        mlab=mlab,
        nmask=nmask,
        nsp=rb.column("next_sentence_label").to_numpy(),
        **sets,
    )


def loader_vocab_tables(data_dir: Path, manifest: dict[str, Any]) -> VocabTables:
    """The masking tables of a build's vocabulary file (the loader's one use of the tokenizer)."""
    vocab = resolve_entry(data_dir, manifest["vocab"], what="vocab")
    return build_vocab_tables(vocab.name, vocab.read_bytes(), manifest["config"].get("do_lower_case"))


def apply_masks(rows: Rows, epoch: np.ndarray, cfg: BuildConfig, tables: VocabTables | None) -> Rows:
    """The masks of rows read in ``epoch`` (per row): set ``epoch % N`` of mask copies, or drawn now
    (dynamic masking, ``corpusgen.masking.mask_rows``); static rows as they are."""
    n, pw = rows.mpos.shape
    if rows.cpos is not None:
        j = epoch % rows.cpos.shape[1]
        r = np.arange(n)
        mpos, mlab, cinp, nmask = rows.cpos[r, j], rows.clab[r, j], rows.cinp[r, j], rows.cn[r, j]
        valid = np.arange(pw) < nmask[:, None]
        ids = rows.ids.copy()
        ids[np.repeat(r, nmask), mpos[valid]] = cinp[valid]
        return dataclasses.replace(rows, ids=ids, mpos=mpos, mlab=mlab, nmask=nmask)
    if rows.shard_key is None:
        return rows
    tokens = np.arange(rows.ids.shape[1]) < rows.length[:, None]
    keys = row_keys(cfg.random_seed, epoch, rows.shard_key, rows.shard_row)
    ws = rows.wstart[tokens] if rows.wstart is not None else None
    seq, m = mask_rows(rows.ids[tokens], rows.length, ws, cfg, tables, keys)
    ids = np.zeros_like(rows.ids)
    ids[tokens] = m.apply(seq.ids)
    row = seq.row_of[m.chosen]
    col = np.arange(len(m.chosen)) - np.repeat(np.cumsum(m.n_masked) - m.n_masked, m.n_masked)
    mpos, mlab = np.zeros_like(rows.mpos), np.zeros_like(rows.mlab)
    mpos[row, col] = m.chosen - seq.row_start[row]
    mlab[row, col] = m.labels
    return dataclasses.replace(rows, ids=ids, mpos=mpos, mlab=mlab, nmask=m.n_masked.astype(np.int32))


def collate(rows: Rows) -> dict[str, torch.Tensor]:
    """Dense rows of one bin → the batch dict in the module docstring (T, P rounded up to 8)."""
    T = round_up(int(rows.length.max()))
    P = round_up(int(rows.nmask.max()))
    cols = np.arange(T, dtype=np.int32)
    attention_mask = cols < rows.length[:, None]
    token_type_ids = (cols >= rows.a_len[:, None]) & attention_mask
    masked_valid = np.arange(P, dtype=np.int32) < rows.nmask[:, None]
    labels = np.where(masked_valid, rows.mlab[:, :P].astype(np.int64), IGNORE)
    return {
        "input_ids": torch.from_numpy(rows.ids[:, :T].astype(np.int64)),
        "token_type_ids": torch.from_numpy(token_type_ids.astype(np.int64)),
        "attention_mask": torch.from_numpy(attention_mask),
        "masked_positions": torch.from_numpy(rows.mpos[:, :P].astype(np.int64)),
        "masked_labels": torch.from_numpy(labels),
        "masked_valid": torch.from_numpy(masked_valid),
        "next_sentence_label": torch.from_numpy(rows.nsp.astype(np.int64)),
        **(packed_keys(rows.seg[:, :T], attention_mask) if rows.seg is not None else {}),
    }


def packed_keys(seg: np.ndarray, attention_mask: np.ndarray) -> dict[str, torch.Tensor]:
    """``doc_ids`` and ``position_ids`` of packed rows from each position's piece (B, T)."""
    seg = seg.astype(np.int64)
    T = seg.shape[1]
    cols = np.broadcast_to(np.arange(T), seg.shape)
    new = np.ones(seg.shape, dtype=bool)
    new[:, 1:] = seg[:, 1:] != seg[:, :-1]
    first = np.maximum.accumulate(np.where(new, cols, 0), axis=1)  # where the position's piece starts
    return {
        "doc_ids": torch.from_numpy(np.where(attention_mask, seg, -1)),
        "position_ids": torch.from_numpy(np.where(attention_mask, cols - first, 0)),
    }


# --- the dataset --------------------------------------------------------------------------


class ShardDataset(IterableDataset):
    """Batches (dicts of tensors, see the module docstring) from one split of a build.

    ``epochs=None`` streams forever (training: epochs follow each other, rows left in the buffer
    at an epoch's end go into the next batches, every batch has ``batch_size`` rows).
    ``epochs=k`` stops after k passes and, unless ``drop_last``, yields the short batches left over
    (evaluation, tests). Use with ``DataLoader(batch_size=None)`` or, for resumable state,
    through ``ShardLoader``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        split: str = "train",
        batch_size: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        shuffle_buffer: int = 65536,
        epochs: int | None = None,
        drop_last: bool = True,
        expect_vocab_sha256: str | None = None,
        manifest: dict[str, Any] | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.data_dir = Path(data_dir)
        self.manifest = manifest if manifest is not None else load_build(self.data_dir, expect_vocab_sha256)
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.shuffle_buffer, self.epochs, self.drop_last = shuffle, shuffle_buffer, epochs, drop_last
        config = build_config(self.manifest, self.data_dir)
        self.max_seq_length = config.max_seq_length
        self.width = round_up(self.max_seq_length)
        self.predictions = config.max_predictions_per_seq
        self.has_nsp = config.has_pairs
        self.segments = config.next_sentence == "full-sentences"  # rows that hold several documents
        self.build_cfg = config
        self.mask_copies = config.mask_copies
        self.tables = loader_vocab_tables(self.data_dir, self.manifest) if config.dynamic_masking else None

        entries = [e for e in self.manifest["shards"] if e.get("split", "train") == split]
        self.paths = [str(resolve_entry(self.data_dir, e["path"], what="shard path")) for e in entries]
        self.sha256 = [e["sha256"] for e in entries]
        self.bins = sorted({tuple(e.get("bin", (1, self.max_seq_length))) for e in entries})
        bin_index = {b: i for i, b in enumerate(self.bins)}
        self.shard_keys = np.array([shard_key(e["path"]) for e in entries], dtype=np.uint64)
        rows_per_batch = config.rows_per_batch
        cols: list[tuple[int, int, int, int, int, int]] = []
        self.batch_rows: list[list[int]] = []  # rows of each record batch of each shard, from its manifest entry
        for s, e in enumerate(entries):
            bn = bin_index[tuple(e.get("bin", (1, self.max_seq_length)))]
            counts = _record_batch_rows(self.paths[s], int(e["rows"]), rows_per_batch) if e["rows"] else []
            self.batch_rows.append(counts)
            before = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
            cols += [(s, b, 0, n, bn, int(before[b])) for b, n in enumerate(counts) if n]
        self.units = (
            Units(*(np.array(c, dtype=np.int64).reshape(-1) for c in zip(*cols, strict=True))) if cols else None
        )
        self.num_rows = int(sum(int(e["rows"]) for e in entries))
        if self.num_rows == 0:
            raise ManifestError(no_rows_message(self.manifest, self.data_dir, split))
        self.batches_consumed = 0  # advanced by ShardLoader in the main process
        self.num_workers = 0
        self._verified: set[int] = set()  # shards whose sha256 this process has checked
        self.with_row_ids = False  # add "row_ids" (B,) to each batch: ids of its rows (ShardLoader's trace)

    def __len__(self) -> int:
        """Batches per epoch over all ranks and workers, as if one consumer (an estimate under DDP)."""
        if self.drop_last:
            return self.num_rows // self.batch_size
        return math.ceil(self.num_rows / self.batch_size)

    # -- state -----------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "shuffle_buffer": self.shuffle_buffer,
            "split": self.split,
            "shards": [e["sha256"] if "sha256" in e else e["path"] for e in self.manifest["shards"]],
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "batches": self.batches_consumed,
            "num_workers": self.num_workers,
            **self._identity(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"data state version {state.get('version')!r}, this trainer reads {STATE_VERSION}")
        ident = self._identity()
        changed = [k for k in ident if state.get(k) != ident[k]]
        if state.get("num_workers") != self.num_workers:
            changed.append("num_workers")
        if changed:
            raise ValueError(
                f"cannot resume the data stream exactly: {', '.join(changed)} changed since the checkpoint; "
                "resume with the same data, seed, batch size, workers and world size"
            )
        self.batches_consumed = int(state["batches"])

    # -- iteration ---------------------------------------------------------------------

    def _consumer(self) -> tuple[int, int, int, int]:
        """(consumer id, consumers, this worker's role, workers).

        DataLoader takes batches from workers round-robin starting at worker 0, so after k batches
        worker i of a fresh loader plays the role worker (i + k) % W had in the original one.
        """
        info = get_worker_info()
        i, W = (info.id, info.num_workers) if info is not None else (0, 1)
        role = (i + self.batches_consumed) % W
        return self.rank * W + role, self.world_size * W, role, W

    def _schedule(self, units: Units, consumer: int, consumers: int) -> Iterator[tuple[str, Any]]:
        """Events ("load", unit) and ("batch", epoch * rows + global row ids), indices only, fully deterministic."""
        starts = np.zeros(len(units) + 1, dtype=np.int64)
        np.cumsum(units.rows, out=starts[1:])
        rng = np.random.default_rng([self.seed, consumers, consumer, 0xB0FF])
        total = int(starts[-1])  # a buffered row is held as epoch * total + row: masks depend on its epoch
        pools = [np.empty(0, dtype=np.int64) for _ in self.bins]
        sizes = np.zeros(len(self.bins), dtype=np.int64)
        buffer = max(1, min(self.shuffle_buffer, self.num_rows // consumers))
        B = self.batch_size
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            order = (
                np.random.default_rng([self.seed, epoch]).permutation(len(units))
                if self.shuffle
                else np.arange(len(units))
            )
            for u in order[consumer::consumers]:
                b = units.bin[u]
                pool = np.concatenate([pools[b], np.arange(starts[u], starts[u + 1]) + epoch * total])
                pools[b] = rng.permutation(pool) if self.shuffle else pool
                sizes[b] = len(pool)
                yield "load", int(u)
                while sizes.sum() >= buffer and sizes.max() >= B:
                    # a bin in proportion to the rows it holds: every buffered row then leaves at the same
                    # rate, whatever its bin (largest-first would strand the rare short rows)
                    weights = np.cumsum(np.where(sizes >= B, sizes, 0))
                    b = int(np.searchsorted(weights, rng.random() * weights[-1], side="right"))
                    batch, pools[b] = pools[b][:B], pools[b][B:]
                    sizes[b] -= B
                    yield "batch", batch
            epoch += 1
        for b in range(len(self.bins)):  # the finite case: drain bin by bin
            while sizes[b] >= B or (sizes[b] and not self.drop_last):
                batch, pools[b] = pools[b][:B], pools[b][B:]
                sizes[b] = len(pools[b])
                yield "batch", batch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        consumer, consumers, role, num_workers = self._consumer()
        if self.batches_consumed and num_workers != max(self.num_workers, 1):
            raise ValueError(f"data state saved with {self.num_workers} workers, iterating with {num_workers}")
        if self.num_rows < consumers:
            raise ManifestError(f"{self.data_dir}: {self.num_rows} {self.split} rows cannot feed {consumers} consumers")
        units = self.units.split(2 * consumers)
        starts = np.zeros(len(units) + 1, dtype=np.int64)
        np.cumsum(units.rows, out=starts[1:])
        # the batches this role made so far: every W-th, starting at its index
        skip = max(0, (self.batches_consumed - role + num_workers - 1) // num_workers)

        refs = np.zeros(len(units), dtype=np.int64)  # rows of each unit still waiting in a buffer
        cache: dict[int, Rows] = {}
        readers: dict[int, pa.ipc.RecordBatchFileReader] = {}

        def load(u: int) -> Rows:
            s = int(units.shard[u])
            if s not in self._verified:  # once per shard per process, before any of its rows is read
                verify_shard(self.paths[s], self.sha256[s])
                self._verified.add(s)
            if s not in readers:
                if len(readers) >= 32:
                    readers.pop(next(iter(readers)))
                readers[s] = open_shard(self.paths[s])
            b = int(units.batch[u])
            rb = readers[s].get_batch(b)
            if rb.num_rows != self.batch_rows[s][b]:  # the file is the build's (sha256): its entry was edited
                raise ManifestError(
                    f"{self.paths[s]}: record batch {b} holds {rb.num_rows} rows, the manifest's row count for "
                    f"the shard gives {self.batch_rows[s][b]}; the manifest was edited: rebuild the data"
                )
            problem = stored_masks_problem(rb, self.tables is not None)
            if problem is not None:
                raise ManifestError(f"{self.paths[s]}: {problem}; the manifest was edited: rebuild the data")
            rb = rb.slice(int(units.lo[u]), int(units.rows[u]))
            try:
                rows = rows_from_record_batch(
                    rb, self.width, round_up(self.predictions), self.mask_copies, self.segments
                )
            except ManifestError as exc:  # a row wider than the build says: name the shard
                raise ManifestError(f"{self.paths[s]}: {exc}") from None
            if self.tables is not None:  # dynamic masking: where each row sits names its mask stream
                rows.shard_row = int(units.offset[u] + units.lo[u]) + np.arange(int(units.rows[u]), dtype=np.int64)
                rows.shard_key = np.full(int(units.rows[u]), self.shard_keys[s], dtype=np.uint64)
            return rows

        for kind, arg in self._schedule(units, consumer, consumers):
            if kind == "load":
                refs[arg] += units.rows[arg]
                if skip == 0 and arg not in cache:
                    cache[arg] = load(arg)
                continue
            epoch, arg = np.divmod(arg, starts[-1])
            unit_of = np.searchsorted(starts, arg, side="right") - 1
            if skip == 0:
                rows = self._gather(cache, unit_of, arg - starts[unit_of])
                batch = collate(apply_masks(rows, epoch, self.build_cfg, self.tables))
                if self.with_row_ids:  # the row's index in this split, shards taken in manifest order
                    batch["row_ids"] = torch.from_numpy(arg.astype(np.int64))
                yield batch
            np.subtract.at(refs, unit_of, 1)
            for u in np.unique(unit_of):
                if refs[u] == 0:
                    cache.pop(int(u), None)
            if skip:
                skip -= 1
                if skip == 0:  # resumed: load what the buffers still point to
                    cache = {int(u): load(int(u)) for u in np.flatnonzero(refs)}

    @staticmethod
    def _gather(cache: dict[int, Rows], unit_of: np.ndarray, local: np.ndarray) -> Rows:
        uniq = np.unique(unit_of)
        if len(uniq) == 1:
            src = cache[int(uniq[0])]
            return Rows(**{f: getattr(src, f)[local] for f in src.present()})
        out = Rows.empty_like(cache[int(uniq[0])], len(local))
        for u in uniq:
            sel = unit_of == u
            src = cache[int(u)]
            for f in src.present():
                getattr(out, f)[sel] = getattr(src, f)[local[sel]]
        return out


def ignore_stop_signals(worker_id: int) -> None:
    """A DataLoader worker leaves SIGINT and SIGTERM to the training process, which stops at a step
    boundary (a Ctrl-C reaches every process of the terminal's group; torch's workers would exit on it,
    and the next batch with them). A worker still ends with its parent."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def worker_message(exc: ManifestError) -> str:
    """The one-line message of a ``ManifestError`` a DataLoader worker raised: torch re-raises it in the
    main process as ``Caught ManifestError in DataLoader worker process 0.\\nOriginal Traceback …``,
    whose last line is ``corpusgen.shards.ManifestError: <the message>``."""
    text = str(exc)
    if not text.startswith("Caught "):
        return text
    last = text.rstrip().splitlines()[-1]
    name, sep, message = last.partition(": ")
    return message if sep and name.endswith(type(exc).__name__) else last


class ShardLoader:
    """A DataLoader over a ``ShardDataset`` that counts consumed batches, so it can resume exactly.

    ``state_dict()`` after k batches + ``load_state_dict`` on a fresh loader (same data, seed, batch
    size, world size, workers) makes the next batch the (k+1)-th of the uninterrupted stream.
    """

    def __init__(
        self, dataset: ShardDataset, *, num_workers: int = 0, pin_memory: bool = False, prefetch_factor: int = 4
    ):
        self.dataset = dataset
        dataset.num_workers = num_workers
        self.num_workers, self.pin_memory, self.prefetch_factor = num_workers, pin_memory, prefetch_factor
        self.trace_rows: list[list[int]] | None = None
        """A list to record the row ids of each batch in (trace mode); None: off."""

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.dataset.with_row_ids = self.trace_rows is not None
        loader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers else None,
            persistent_workers=False,
            # its own generator: DataLoader otherwise draws a base seed from the global torch RNG,
            # which would shift dropout masks between a resumed and an uninterrupted run
            generator=torch.Generator().manual_seed(self.dataset.seed),
            worker_init_fn=ignore_stop_signals,
        )
        batches = iter(loader)
        try:
            for batch in batches:
                self.dataset.batches_consumed += 1
                if self.trace_rows is not None:
                    self.trace_rows.append(batch.pop("row_ids").tolist())
                yield batch
        except ManifestError as exc:  # raised in a worker, torch re-raises it with the worker's traceback
            raise ManifestError(worker_message(exc)) from None
        finally:
            # the workers ignore SIGTERM, so an iterator left to the garbage collector (a traceback keeps it
            # alive) would hang the process's exit in multiprocessing's join: stop them now
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)


__all__ = ["NSP_IGNORE", "ShardDataset", "ShardLoader", "collate", "load_build", "round_up"]
