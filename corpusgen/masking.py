"""Pre-computed MLM masks and the columnar instances of one document.

``mask_pairs`` turns a document's pairs into ``Instances`` (see ``shards``):
``[CLS] A [SEP] B [SEP]`` with the masks applied. All instances of a document
are masked at once with array operations; no Python runs per token.

Semantics (google-research/bert ``create_masked_lm_predictions``): of the
positions that hold ordinary tokens, ``round(n * masked_lm_prob)`` (at least 1,
at most ``max_predictions_per_seq``) are chosen; of those 80% become ``[MASK]``,
10% a random ordinary token, 10% stay. Two deliberate differences: the count is
taken over ordinary tokens (not the whole sequence with its specials), and a
random replacement never equals the original token, so every chosen position's
kind (mask / random / kept) can be read back from the shard and checked. With
``do_whole_word_mask`` a word's pieces are chosen together; words are taken in
random order while they fit in the budget (the reference also skips a word that
would overflow and tries smaller ones; here selection stops there instead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corpusgen.config import BuildConfig
from corpusgen.pairing import Pair
from corpusgen.shards import Instances, position_dtype, token_dtype


@dataclass(frozen=True)
class VocabTables:
    """What masking needs of a vocabulary, as arrays indexed by token id."""

    cls_id: int
    sep_id: int
    mask_id: int
    is_special: np.ndarray  # bool: [PAD] [UNK] [CLS] [SEP] [MASK] [unused…] — never chosen, never drawn
    is_continuation: np.ndarray  # bool: "##" pieces (none for BPE/Unigram: their pairs carry word starts)
    replacement_ids: np.ndarray  # int64: ordinary ids, the pool random replacements come from
    replacement_rank: np.ndarray  # int64: index of an id in replacement_ids, -1 for specials

    @property
    def vocab_size(self) -> int:
        return len(self.is_special)

    @classmethod
    def from_tokenizer(cls, wp) -> VocabTables:
        return cls(
            wp.cls_id, wp.sep_id, wp.mask_id, wp.is_special, wp.is_continuation, wp.replacement_ids, wp.replacement_rank
        )


def _segment_rows(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index of every flat position, start offset of every row)."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return np.repeat(np.arange(len(lengths)), lengths), starts


def mask_pairs(
    pairs: Sequence[Pair],
    tables: VocabTables,
    cfg: BuildConfig,
    rng: np.random.Generator,
    counts: Counter,
) -> Instances:
    """Assemble and mask the instances of ``pairs`` (one document, one dupe)."""
    return mask_documents([(pairs, rng)], tables, cfg, counts)


def mask_documents(
    documents: Sequence[tuple[Sequence[Pair], np.random.Generator]],
    tables: VocabTables,
    cfg: BuildConfig,
    counts: Counter,
) -> Instances:
    """Assemble and mask the instances of many documents at once.

    Three steps, each its own function: ``assemble`` lays out ``[CLS] A [SEP] B [SEP]``, a
    position scheme of ``POSITION_SCHEMES`` chooses what to predict, ``replace`` applies
    80/10/10. Each document's random numbers come from its own generator (drawn in one call per
    kind), so the result for a document does not depend on which others share the batch.
    """
    rngs = [rng for _, rng in documents]
    seq = assemble([pairs for pairs, _ in documents], tables)
    cand = ~tables.is_special[seq.ids]  # ordinary tokens only ([CLS]/[SEP]/[UNK]… are special ids)
    n_cand = np.bincount(seq.row_of[cand], minlength=seq.n_rows)
    k = np.minimum(cfg.max_predictions_per_seq, np.maximum(1, np.rint(n_cand * cfg.masked_lm_prob).astype(np.int64)))
    k[n_cand == 0] = 0
    choose = POSITION_SCHEMES[cfg.mask_scheme]
    chosen = choose(seq, cand, k, tables, rngs)
    masked, labels, n_masked = replace(seq, chosen, k, tables, rngs)
    order_key = [rng.integers(0, 2**63 - 1, size=int(n), dtype=np.int64) for rng, n in zip(rngs, seq.rows_per_doc)]
    counts["mask_candidates"] += int(n_cand.sum())

    tok = token_dtype(tables.vocab_size)
    return Instances(
        input_ids=masked.astype(tok),
        lengths=seq.lengths.astype(np.int32),
        a_len=seq.a_len.astype(np.uint16),
        masked_positions=(chosen - seq.row_start[seq.row_of[chosen]]).astype(position_dtype(cfg.max_seq_length)),
        num_masked=n_masked.astype(np.int32),
        masked_labels=labels.astype(tok),
        next_sentence_label=seq.nsp.astype(np.int8),
        order_key=(np.concatenate(order_key) if order_key else np.zeros(0, np.int64)).astype(np.uint64),
    )


@dataclass
class Sequences:
    """Unmasked instances of a batch of documents, flat: ``ids[row_start[r]:][:lengths[r]]`` is row r."""

    ids: np.ndarray  # int64
    lengths: np.ndarray  # int64, per row
    a_len: np.ndarray  # int64, per row
    nsp: np.ndarray  # int64, per row
    row_of: np.ndarray  # row of every flat position
    row_start: np.ndarray  # flat offset of every row
    rows_per_doc: np.ndarray  # int64, per document
    doc_of_row: np.ndarray  # int64, per row
    word_start: np.ndarray  # bool, per position: a word starts here (specials never)

    @property
    def n_rows(self) -> int:
        return len(self.lengths)


def assemble(documents: Sequence[Sequence[Pair]], tables: VocabTables) -> Sequences:
    """``[CLS] A [SEP] B [SEP]`` (or ``[CLS] A [SEP]``) for every pair of every document."""
    pieces: list[np.ndarray] = []
    lengths_l: list[int] = []
    a_len_l: list[int] = []
    nsp_l: list[int] = []
    rows_per_doc = np.zeros(len(documents), dtype=np.int64)
    cls_ = np.array([tables.cls_id], dtype=np.int64)
    sep_ = np.array([tables.sep_id], dtype=np.int64)
    flags: list[np.ndarray | None] = []  # per piece: the tokenizer's word starts; None: the id table tells
    has_flags = False
    for d, pairs in enumerate(documents):
        rows_per_doc[d] = len(pairs)
        for p in pairs:
            a_len_l.append(len(p.tokens_a) + 2)
            nsp_l.append(p.label)
            pieces += [cls_, p.tokens_a, sep_]
            flags += [None, p.starts_a, None]
            has_flags |= p.starts_a is not None
            if p.tokens_b is not None:
                pieces += [p.tokens_b, sep_]
                flags += [p.starts_b, None]
                lengths_l.append(len(p.tokens_a) + len(p.tokens_b) + 3)
            else:
                lengths_l.append(len(p.tokens_a) + 2)
    ids = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)
    lengths = np.array(lengths_l, dtype=np.int64)
    row_of, row_start = _segment_rows(lengths)
    # A word starts at a candidate that starts one (by the tokenizer's word ids, or by not being a
    # "##" piece), or whose left neighbour is no candidate (right after [CLS]/[SEP], a truncated front).
    if has_flags:
        starts = np.concatenate([~tables.is_continuation[x] if f is None else f for x, f in zip(pieces, flags)])
    else:
        starts = ~tables.is_continuation[ids]
    cand = ~tables.is_special[ids]
    prev_cand = np.concatenate(([False], cand[:-1])) & np.concatenate(([False], row_of[1:] == row_of[:-1]))
    return Sequences(
        ids=ids,
        lengths=lengths,
        a_len=np.array(a_len_l, dtype=np.int64),
        nsp=np.array(nsp_l, dtype=np.int64),
        row_of=row_of,
        row_start=row_start,
        rows_per_doc=rows_per_doc,
        doc_of_row=np.repeat(np.arange(len(documents)), rows_per_doc),
        word_start=cand & (starts | ~prev_cand),
    )


def choose_tokens(seq: Sequences, cand: np.ndarray, k: np.ndarray, tables: VocabTables, rngs) -> np.ndarray:
    """``k[r]`` candidate positions of each row r, uniformly at random (flat, ascending)."""
    tokens_per_doc = np.bincount(seq.doc_of_row, weights=seq.lengths, minlength=len(rngs)).astype(np.int64)
    keys = np.concatenate([rng.random(int(t)) for rng, t in zip(rngs, tokens_per_doc)]) if seq.n_rows else np.zeros(0)
    kmax = int(k.max()) if seq.n_rows else 0
    if kmax == 0:
        return np.zeros(0, np.int64)
    # The k smallest keys of each row's candidates: rows laid out as a grid (non-candidates and
    # padding sort last), a partition to the kmax smallest per row, then those few sorted.
    width = int(seq.lengths.max())
    col = np.arange(len(seq.ids)) - seq.row_start[seq.row_of]
    grid = np.full((seq.n_rows, width), 3.0)
    grid[seq.row_of, col] = np.where(cand, keys, 2.0)
    best = np.argpartition(grid, kmax - 1, axis=1)[:, :kmax] if kmax < width else np.argsort(grid, axis=1)
    best = np.take_along_axis(best, np.argsort(np.take_along_axis(grid, best, 1), axis=1, kind="stable"), 1)
    take = np.arange(best.shape[1])[None, :] < k[:, None]
    return np.sort((seq.row_start[:, None] + best)[take])


def replace(seq: Sequences, chosen: np.ndarray, k: np.ndarray, tables: VocabTables, rngs):
    """80% [MASK], 10% a random ordinary token (never the original), 10% kept.

    Returns (masked ids, labels, masked positions per row). Per document, up to ``k`` summed over
    its rows draws of the kind and of a replacement token.
    """
    k_per_doc = np.bincount(seq.doc_of_row, weights=k, minlength=len(rngs)).astype(np.int64)
    u_all = [rng.random(int(n)) for rng, n in zip(rngs, k_per_doc)]
    r_all = [rng.integers(0, len(tables.replacement_ids) - 1, size=int(n)) for rng, n in zip(rngs, k_per_doc)]
    chosen_doc = seq.doc_of_row[seq.row_of[chosen]]
    first = np.searchsorted(chosen_doc, np.arange(len(rngs)), side="left")
    within = np.arange(len(chosen)) - first[chosen_doc]
    base = np.concatenate(([0], np.cumsum(k_per_doc)[:-1]))
    pick = base[chosen_doc] + within
    u = np.concatenate(u_all)[pick] if len(chosen) else np.zeros(0)
    draw = np.concatenate(r_all)[pick] if len(chosen) else np.zeros(0, np.int64)

    labels = seq.ids[chosen]
    is_mask = u < 0.8
    is_random = u >= 0.9
    draw = draw[is_random]
    # Skip the original's own slot so the replacement always differs from it.
    draw += draw >= tables.replacement_rank[labels[is_random]]
    masked = seq.ids.copy()
    masked[chosen[is_mask]] = tables.mask_id
    masked[chosen[is_random]] = tables.replacement_ids[draw]
    return masked, labels, np.bincount(seq.row_of[chosen], minlength=seq.n_rows)


def choose_whole_words(seq: Sequences, cand: np.ndarray, k: np.ndarray, tables: VocabTables, rngs) -> np.ndarray:
    """Whole words (a token where ``seq.word_start`` and the pieces after it) at random while they fit in ``k``."""
    row_of, n_rows, doc_of_row = seq.row_of, seq.n_rows, seq.doc_of_row
    starts = seq.word_start
    word_of = np.cumsum(starts) - 1  # word index of each position (valid where cand)
    pos = np.flatnonzero(cand)
    word_pos = word_of[pos]
    n_words = int(starts.sum())
    size = np.bincount(word_pos, minlength=n_words)
    word_row = row_of[np.flatnonzero(starts)]
    words_per_doc = np.bincount(doc_of_row[word_row], minlength=len(rngs))
    word_keys = np.concatenate([rng.random(int(n)) for rng, n in zip(rngs, words_per_doc)]) if n_words else np.zeros(0)
    order = np.lexsort((word_keys, word_row))  # random word order inside each row
    sizes = size[order]
    csum = np.cumsum(sizes)
    row_first = np.searchsorted(word_row[order], np.arange(n_rows), side="left")
    before = np.concatenate(([0], csum))[row_first]  # tokens of earlier rows
    within = csum - before[word_row[order]]
    take = np.zeros(n_words, dtype=bool)
    take[order[within <= k[word_row[order]]]] = True
    return np.sort(pos[take[word_pos]])


POSITION_SCHEMES = {"token": choose_tokens, "whole-word": choose_whole_words}
"""How positions to predict are chosen (``BuildConfig.mask_scheme``): one function per scheme, the
same signature each. A new scheme is a function here and its name in this table."""
