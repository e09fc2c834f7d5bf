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
    is_continuation: np.ndarray  # bool: "##" pieces
    replacement_ids: np.ndarray  # int64: ordinary ids, the pool random replacements come from
    replacement_rank: np.ndarray  # int64: index of an id in replacement_ids, -1 for specials

    @property
    def vocab_size(self) -> int:
        return len(self.is_special)

    @classmethod
    def from_wordpiece(cls, wp) -> VocabTables:
        return cls(
            wp.cls_id, wp.sep_id, wp.mask_id, wp.is_special, wp.is_continuation, wp.replacement_ids, wp.replacement_rank
        )


KIND_MASK, KIND_RANDOM, KIND_KEPT = "masked_mask", "masked_random", "masked_kept"


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

    Each document's random numbers come from its own generator (drawn in one call per
    kind), so the result for a document does not depend on which others share the batch.
    """
    pieces: list[np.ndarray] = []
    lengths_l: list[int] = []
    a_len_l: list[int] = []
    nsp_l: list[int] = []
    rows_per_doc = np.zeros(len(documents), dtype=np.int64)
    cls_ = np.array([tables.cls_id], dtype=np.int64)
    sep_ = np.array([tables.sep_id], dtype=np.int64)
    for d, (pairs, _) in enumerate(documents):
        rows_per_doc[d] = len(pairs)
        for p in pairs:
            a_len_l.append(len(p.tokens_a) + 2)
            nsp_l.append(p.label)
            pieces += [cls_, p.tokens_a, sep_]
            if p.tokens_b is not None:
                pieces += [p.tokens_b, sep_]
                lengths_l.append(len(p.tokens_a) + len(p.tokens_b) + 3)
            else:
                lengths_l.append(len(p.tokens_a) + 2)
    n_rows = len(lengths_l)
    ids = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)
    lengths = np.array(lengths_l, dtype=np.int64)
    row_of, row_start = _segment_rows(lengths)
    doc_of_row = np.repeat(np.arange(len(documents)), rows_per_doc)
    tokens_per_doc = np.bincount(doc_of_row, weights=lengths, minlength=len(documents)).astype(np.int64)

    # Candidates: ordinary tokens only ([CLS]/[SEP]/[UNK]… are special ids).
    cand = ~tables.is_special[ids]
    n_cand = np.bincount(row_of[cand], minlength=n_rows)
    k = np.minimum(cfg.max_predictions_per_seq, np.maximum(1, np.rint(n_cand * cfg.masked_lm_prob).astype(np.int64)))
    k[n_cand == 0] = 0
    k_per_doc = np.bincount(doc_of_row, weights=k, minlength=len(documents)).astype(np.int64)

    if cfg.do_whole_word_mask:
        chosen = _choose_whole_words(ids, cand, row_of, k, n_rows, tables, [rng for _, rng in documents], doc_of_row)
    else:
        keys = (
            np.concatenate([rng.random(int(t)) for (_, rng), t in zip(documents, tokens_per_doc)])
            if n_rows
            else np.zeros(0)
        )
        keys[~cand] = 2.0  # after every candidate
        order = np.lexsort((keys, row_of))  # by row, then key
        rank = np.arange(len(ids)) - row_start[row_of[order]]
        chosen = np.sort(order[rank < k[row_of[order]]])

    # Per document: up to k_per_doc draws of the kind (80/10/10) and of a replacement token.
    u_all = [rng.random(int(n)) for (_, rng), n in zip(documents, k_per_doc)]
    r_all = [rng.integers(0, len(tables.replacement_ids) - 1, size=int(n)) for (_, rng), n in zip(documents, k_per_doc)]
    order_key = [
        rng.integers(0, 2**63 - 1, size=int(n), dtype=np.int64) for (_, rng), n in zip(documents, rows_per_doc)
    ]
    chosen_doc = doc_of_row[row_of[chosen]]
    first = np.searchsorted(chosen_doc, np.arange(len(documents)), side="left")
    within = np.arange(len(chosen)) - first[chosen_doc]
    base = np.concatenate(([0], np.cumsum(k_per_doc)[:-1]))
    pick = base[chosen_doc] + within
    u = np.concatenate(u_all)[pick] if len(chosen) else np.zeros(0)
    draw = np.concatenate(r_all)[pick] if len(chosen) else np.zeros(0, np.int64)

    labels = ids[chosen]
    is_mask = u < 0.8
    is_random = u >= 0.9
    draw = draw[is_random]
    # Skip the original's own slot so the replacement always differs from it.
    draw += draw >= tables.replacement_rank[labels[is_random]]
    masked = ids.copy()
    masked[chosen[is_mask]] = tables.mask_id
    masked[chosen[is_random]] = tables.replacement_ids[draw]

    n_masked = np.bincount(row_of[chosen], minlength=n_rows)
    n_random = int(is_random.sum())
    counts["instances"] += n_rows
    counts["instance_tokens"] += len(ids)
    counts["mask_candidates"] += int(n_cand.sum())
    counts[KIND_MASK] += int(is_mask.sum())
    counts[KIND_RANDOM] += n_random
    counts[KIND_KEPT] += len(chosen) - int(is_mask.sum()) - n_random

    tok = token_dtype(tables.vocab_size)
    return Instances(
        input_ids=masked.astype(tok),
        lengths=lengths.astype(np.int32),
        a_len=np.array(a_len_l, dtype=np.uint16),
        masked_positions=(chosen - row_start[row_of[chosen]]).astype(position_dtype(cfg.max_seq_length)),
        num_masked=n_masked.astype(np.int32),
        masked_labels=labels.astype(tok),
        next_sentence_label=np.array(nsp_l, dtype=np.int8),
        order_key=(np.concatenate(order_key) if order_key else np.zeros(0, np.int64)).astype(np.uint64),
    )


def _choose_whole_words(ids, cand, row_of, k, n_rows, tables: VocabTables, rngs, doc_of_row) -> np.ndarray:
    # A word starts at a candidate that is not a "##" piece, or whose left neighbour
    # is no candidate (a piece right after [CLS]/[SEP] or a truncated front).
    prev_cand = np.concatenate(([False], cand[:-1])) & np.concatenate(([False], row_of[1:] == row_of[:-1]))
    starts = cand & (~tables.is_continuation[ids] | ~prev_cand)
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
