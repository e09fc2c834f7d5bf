"""Packed MLM-only rows: RoBERTa's FULL-SENTENCES and DOC-SENTENCES layouts.

This module owns how a pool's documents are cut into packed rows and where each document
segment of a row starts (the ``doc_starts`` column); masking stays with ``corpusgen.masking``
(a row goes through it as a single-segment ``Pair``) and shard layout with ``corpusgen.shards``.

* ``full-sentences``: the pool's documents, one after another, fill every row to
  ``max_seq_length``: ``[CLS] d1 … [SEP] d2 … [SEP]``. A ``[SEP]`` closes each document's piece,
  so the trainer (and a reader) sees where one document ends; a row that ends inside a document
  continues it in the next row. Only the last row of a pool (per dupe) is shorter; a row may
  also end one position short, when a document ends with a single free position left (a piece
  needs a token and its ``[SEP]``).
* ``doc-sentences``: the same within one document: ``[CLS] d … [SEP]``; a document's last row
  is shorter.

Rows are filled to the position, not closed at a sentence end as RoBERTa's ``complete`` mode
does: closing at sentence ends leaves half a sentence empty per row on average (12.6% of the row
at 128 tokens on the bundled Wikipedia sample), which the trainer would see as padding (up to 2.8%
with bins of 8; ``bench/bench_packing.py``); filled rows leave full-sentences builds with no padding to speak of
(README). Sentences keep their order, and the sentence that straddles a row boundary is the only
one split (at any token: the rest of a word may open the next row).

Dupe copies differ in their row boundaries, not only in their masks: copy 0 keeps the pool's
key order (full-sentences) or starts each document at its first token (doc-sentences); copy
d > 0 shuffles the pool's document order (full-sentences, seeded by the pool and d: documents
meet other neighbours and every boundary moves), or gives each document a first row of a
seeded random length shorter than copy 0's (doc-sentences: every later boundary shifts by it;
the length is one the loader pads nothing to, see ``first_row_tokens``). A document that fits in
one row stays one row in every copy (splitting it would only shorten its context and add a padded
row), as does a full-sentences pool of one document: their copies differ in their masks only.
Every random choice comes from streams named by ``document_seed`` of (seed, key, dupe), as for pairs, so a build
is byte-identical across runners and worker counts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables, mask_documents
from corpusgen.pairing import Pair, TokenizedDocument, document_seed, seeded_rng
from corpusgen.shards import NSP_IGNORE, Instances, position_dtype
from corpusgen.stats import PAD_MULTIPLE
from corpusgen.timing import StageTimer

ROWS_PER_MASK_BATCH = 512  # packed rows masked together; bounds the arrays of one call

PACKED_ROWS = "packed_rows"
PACKED_ROWS_FULL = "packed_rows_full"  # rows of max_seq_length (or one short, see the module docstring)
PACKED_SEGMENTS = "packed_segments"  # document pieces in all rows (doc_starts entries)


class RowBuilder:
    """Rows being filled: each a list of document pieces, with where each piece starts in the row."""

    def __init__(self, max_seq_length: int, sep_id: int):
        self.max_seq_length = max_seq_length
        self.sep = np.array([sep_id], dtype=np.int64)
        self.rows: list[Pair] = []
        self.starts: list[list[int]] = []
        self._pieces: list[np.ndarray] = []
        self._flags: list[np.ndarray | None] = []  # the tokenizer's word starts of each piece (None: by id)
        self._starts: list[int] = []
        self._used = 1  # [CLS]

    def room(self) -> int:
        """Tokens a new piece can add to the open row (its closing [SEP] set aside)."""
        return self.max_seq_length - self._used - 1

    def add(self, tokens: np.ndarray, word_starts: np.ndarray | None = None) -> None:
        """Append a document piece (at most ``room()`` tokens, with its word starts if the tokenizer
        gave them) and its [SEP]."""
        self._starts.append(0 if not self._pieces else self._used)
        self._pieces.append(tokens)
        self._flags.append(word_starts)
        self._used += len(tokens) + 1

    def close(self) -> None:
        """Finish the open row; assemble adds [CLS] and the last [SEP], the inner [SEP]s go in here."""
        if not self._pieces:
            return
        parts = [self._pieces[0]]
        for piece in self._pieces[1:]:
            parts += [self.sep, piece]
        starts = None
        if self._flags[0] is not None:  # word starts travel with the ids; an inner [SEP] starts none
            flags = [self._flags[0]]
            for f in self._flags[1:]:
                flags += [np.zeros(1, dtype=bool), f]
            starts = np.concatenate(flags)
        self.rows.append(Pair(np.concatenate(parts), None, NSP_IGNORE, False, starts_a=starts))
        self.starts.append(self._starts)
        self._pieces, self._flags, self._starts, self._used = [], [], [], 1

    def feed(self, doc: TokenizedDocument, first_row: int | None = None) -> None:
        """Lay ``doc`` out from the open row on; ``first_row`` caps its first piece's tokens."""
        ids, pos, n = doc.ids, 0, doc.n_tokens
        while pos < n:
            if self.room() < 1:
                self.close()
            take = min(self.room(), n - pos)
            if first_row is not None and pos == 0:
                take = min(take, first_row)
            ws = doc.word_starts
            self.add(ids[pos : pos + take], None if ws is None else ws[pos : pos + take])
            pos += take
            if pos < n:  # the document goes on: the row is full (or cut by first_row)
                self.close()


def pack_pool(
    pool: Sequence[TokenizedDocument], cfg: BuildConfig, dupe: int, sep_id: int
) -> list[tuple[RowBuilder, np.ndarray]]:
    """The packed rows of one pool (sorted by key) for one dupe copy, with their seeds.

    full-sentences: one seed for the pool (its first document and the dupe); doc-sentences: one
    per document. Each builder comes with the seed (``document_seed``) its rows are masked with.
    """
    L = cfg.max_seq_length
    if cfg.next_sentence == "full-sentences":
        seed = document_seed(cfg.random_seed, f"pool:{pool[0].key}", dupe)
        order = np.arange(len(pool)) if dupe == 0 else seeded_rng(seed).permutation(len(pool))
        rows = RowBuilder(L, sep_id)
        for i in order.tolist():
            rows.feed(pool[i])
        rows.close()
        return [(rows, seed)]
    out = []
    for doc in pool:
        seed = document_seed(cfg.random_seed, doc.key, dupe)
        first = None
        if dupe and L > 3 and doc.n_tokens > L - 2:  # a shorter first row than copy 0 moves every boundary
            first = first_row_tokens(L - 3, seeded_rng(seed))
        rows = RowBuilder(L, sep_id)
        rows.feed(doc, first)
        rows.close()
        out.append((rows, seed))
    return out


def first_row_tokens(most: int, rng: np.random.Generator) -> int:
    """Tokens of a doc-sentences copy's first row, uniform in [1, most] among the lengths whose row
    ([CLS] + tokens + [SEP]) is a multiple of ``PAD_MULTIPLE`` when there are any: the extra row a
    copy makes then costs the loader no padding (it pads every batch to such a multiple)."""
    aligned = np.arange(PAD_MULTIPLE - 2, most + 1, PAD_MULTIPLE)
    if len(aligned):
        return int(aligned[rng.integers(len(aligned))])
    return int(rng.integers(1, most + 1))


def create_packed_instances(
    pool: Sequence[TokenizedDocument],
    cfg: BuildConfig,
    tables: VocabTables,
    counts: Counter,
    timer: StageTimer,
    dupes: Sequence[int] | None = None,
) -> list[Instances]:
    """The packed rows of a pool for ``dupes`` (default: every copy), masked, with their ``doc_starts``."""
    pos_dtype = position_dtype(cfg.max_seq_length)
    parts = []
    tokens = sum(d.n_tokens for d in pool)
    for dupe in range(cfg.dupe_factor) if dupes is None else dupes:
        with timer.stage("pair"):  # the step that cuts text into rows
            streams = pack_pool(pool, cfg, dupe, tables.sep_id)
        counts["tokens_placed_own"] += tokens
        counts["tokens_covered"] += tokens
        entries = [
            (
                rows.rows[lo : lo + ROWS_PER_MASK_BATCH],
                _piece_seed(seed, lo),
                rows.starts[lo : lo + ROWS_PER_MASK_BATCH],
            )
            for rows, seed in streams
            for lo in range(0, len(rows.rows), ROWS_PER_MASK_BATCH)
        ]
        batch: list = []
        rows_in_batch = 0
        for entry in entries:
            batch.append(entry)
            rows_in_batch += len(entry[0])
            if rows_in_batch >= ROWS_PER_MASK_BATCH:
                parts.append(_masked(batch, tables, cfg, counts, timer, pos_dtype))
                batch, rows_in_batch = [], 0
        if batch:
            parts.append(_masked(batch, tables, cfg, counts, timer, pos_dtype))
    return [p for p in parts if len(p)]


def _piece_seed(seed: np.ndarray, first_row: int) -> np.ndarray:
    """The seed of a stream's rows from ``first_row`` on (a full-sentences pool's rows are masked in
    pieces): the stream's own for the first piece, a hash of it and ``first_row`` for the others."""
    if first_row == 0:
        return seed
    digest = hashlib.blake2b(seed.tobytes() + first_row.to_bytes(8, "little"), digest_size=16).digest()
    return np.frombuffer(digest, dtype=np.uint64)


def _masked(batch, tables, cfg, counts, timer, pos_dtype) -> Instances:
    with timer.stage("mask"):
        inst = mask_documents([(rows, seed) for rows, seed, _ in batch], tables, cfg, counts)
    starts = [s for _, _, row_starts in batch for s in row_starts]
    inst.num_doc_starts = np.array([len(s) for s in starts], dtype=np.int32)
    inst.doc_starts = np.array([p for s in starts for p in s], dtype=np.int64).astype(pos_dtype)
    L = cfg.max_seq_length
    counts[PACKED_ROWS] += len(inst)
    counts[PACKED_ROWS_FULL] += int((inst.lengths >= L - 1).sum())
    counts[PACKED_SEGMENTS] += int(inst.num_doc_starts.sum())
    return inst
