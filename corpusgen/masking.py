"""MLM masks: chosen at build time (static, or N stored copies) or by the loader (dynamic).

``mask_pairs`` turns a document's pairs into ``Instances`` (see ``shards``):
``[CLS] A [SEP] B [SEP]`` with the masks applied. All instances of a document
are masked at once with array operations; no Python runs per token.

Semantics (google-research/bert ``create_masked_lm_predictions``): of the
positions that hold ordinary tokens, ``round(n * masked_lm_prob)`` (at least 1,
at most ``max_predictions_per_seq``) are chosen; of those ``mask_replace_prob``
(0.8) become ``[MASK]``, ``random_replace_prob`` (0.1) a random ordinary token,
the rest stay. Two deliberate differences: the count is taken over ordinary tokens
(not the whole sequence with its specials), and a random replacement never equals
the original token, so every chosen position's kind (mask / random / kept) can be
read back from the shard and checked. With ``do_whole_word_mask`` a word's pieces
are chosen together; words are taken in random order, a word that would overflow
the budget skipped and the next ones still tried, as the reference does. ``span`` masks SpanBERT's spans (``choose_spans``).

The seam: ``assemble`` lays rows out (``Sequences``, with a word start per position), a
scheme of ``POSITION_SCHEMES`` chooses the positions, ``replace`` applies the split. Their
random numbers come from a *draws* object of counter-based streams (``corpusgen.streams``): at
build time ``DocumentDraws`` (a stream per (document, dupe), so a document's masks do not depend on
its neighbours), in the loader ``KeyedDraws`` over ``row_keys`` (a stream per (random_seed, epoch,
row): ``mask_rows``). Static
masks, mask copies and dynamic masks are therefore made by the same functions, and the build
measures the dynamic masks of epoch 0 exactly as the loader draws them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from corpusgen.config import BuildConfig
from corpusgen.pairing import Pair
from corpusgen.shards import WORD_SCHEMES, Instances, position_dtype, token_dtype
from corpusgen.streams import GOLDEN, M64, MASKING, KeyedDraws, mix64, stream_keys


@dataclass(frozen=True)
class VocabTables:
    """What masking needs of a vocabulary, as arrays indexed by token id.

    Pickled as two bit sets and three ids (Beam pickles, bz2-compresses and unpickles every step
    that holds one: the full int64 tables of a 30k vocabulary made 540 KB a step, 4.5 MB at 250k).
    """

    cls_id: int
    sep_id: int
    mask_id: int
    is_special: np.ndarray  # bool: [PAD] [UNK] [CLS] [SEP] [MASK] [unused…] — never chosen, never drawn
    is_continuation: np.ndarray  # bool: "##" pieces (none for BPE/Unigram: their pairs carry word starts)
    # from is_special: the ordinary ids random replacements come from, and each id's index among them (-1 for specials)
    replacement_ids: np.ndarray = field(init=False, repr=False, compare=False)
    replacement_rank: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        replacement_ids = np.flatnonzero(~self.is_special).astype(np.int64)
        rank = np.full(len(self.is_special), -1, dtype=np.int64)
        rank[replacement_ids] = np.arange(len(replacement_ids))
        object.__setattr__(self, "replacement_ids", replacement_ids)
        object.__setattr__(self, "replacement_rank", rank)

    @property
    def vocab_size(self) -> int:
        return len(self.is_special)

    @classmethod
    def from_tokenizer(cls, wp) -> VocabTables:
        return wp.tables

    def __reduce__(self):
        bits = (np.packbits(self.is_special), np.packbits(self.is_continuation))
        return _unpack_tables, (self.cls_id, self.sep_id, self.mask_id, self.vocab_size, *bits)


def _unpack_tables(cls_id, sep_id, mask_id, n, special_bits, continuation_bits) -> VocabTables:
    def unpack(bits):
        return np.unpackbits(bits, count=n).astype(bool)

    return VocabTables(cls_id, sep_id, mask_id, unpack(special_bits), unpack(continuation_bits))


def build_vocab_tables(vocab_name: str, vocab_bytes: bytes, do_lower_case: bool | None = None) -> VocabTables:
    """The tables of a build's vocabulary file (for the loader and ``validate`` of dynamic builds)."""
    from corpusgen.tokenizer import SubwordTokenizer, VocabFile

    return VocabTables.from_tokenizer(SubwordTokenizer(VocabFile(vocab_name, vocab_bytes), do_lower_case))


def _segment_rows(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index of every flat position, start offset of every row)."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return np.repeat(np.arange(len(lengths)), lengths), starts


# --- random numbers -------------------------------------------------------------------------


class Draws(Protocol):
    """Where the masking functions take their random numbers from: ``per_row[r]`` for every row r,
    rows in order, as one flat array."""

    def random(self, per_row: np.ndarray) -> np.ndarray: ...  # floats in [0, 1)

    def integers(self, high: int, per_row: np.ndarray) -> np.ndarray: ...  # ints in [0, high)


class DocumentDraws:
    """Random numbers for the rows of many documents, each document on its own stream.

    ``random(per_row)`` returns ``per_row[r]`` numbers for every row r, rows in order: a document's
    numbers are those of its stream alone (``KeyedDraws``, its rows' counts summed), so
    they do not depend on the other documents of the batch, and the whole batch is drawn with a
    few array operations (a generator per document cost four calls of Python each: 8% of a build).
    """

    def __init__(self, seeds: np.ndarray, rows_per_doc: np.ndarray) -> None:
        self.streams = KeyedDraws(stream_keys(seeds, MASKING))
        self.doc_of_row = np.repeat(np.arange(len(self.streams.keys)), rows_per_doc)

    def _per_doc(self, per_row: np.ndarray) -> np.ndarray:
        return np.bincount(self.doc_of_row, weights=per_row, minlength=len(self.streams.keys)).astype(np.int64)

    def words(self, per_row: np.ndarray) -> np.ndarray:
        return self.streams.words(self._per_doc(per_row))

    def random(self, per_row: np.ndarray) -> np.ndarray:
        return self.streams.random(self._per_doc(per_row))

    def integers(self, high: int, per_row: np.ndarray) -> np.ndarray:
        """Integers in [0, high)."""
        return self.streams.integers(high, self._per_doc(per_row))


def shard_key(path: str) -> int:
    """A 64-bit name of a shard (its path inside the build), part of its rows' mask keys."""
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8"), digest_size=8).digest(), "little")


def row_keys(seed: int, epoch: np.ndarray | int, shard: np.ndarray | int, row: np.ndarray) -> np.ndarray:
    """The keys of rows' mask streams: one per (random_seed, epoch, shard key, row within the shard)."""
    row = np.asarray(row, dtype=np.int64).reshape(-1)
    h = mix64(np.broadcast_to(np.asarray(shard, dtype=np.uint64), row.shape) ^ np.uint64(int(seed) & M64))
    h = mix64(h + np.broadcast_to(np.asarray(epoch, dtype=np.int64), row.shape).astype(np.uint64) * np.uint64(GOLDEN))
    return mix64(h + (row.astype(np.uint64) + np.uint64(1)) * np.uint64(0xD1B54A32D192ED03))


# --- the seam ---------------------------------------------------------------------------------


def mask_pairs(
    pairs: Sequence[Pair],
    tables: VocabTables,
    cfg: BuildConfig,
    seed: np.ndarray,
    counts: Counter,
) -> Instances:
    """Assemble and mask the instances of ``pairs`` (one document, one dupe, named by ``seed``:
    ``pairing.document_seed``)."""
    return mask_documents([(pairs, seed)], tables, cfg, counts)


@dataclass
class MaskSet:
    """One set of masks of a batch of rows: what is predicted, and what the model is shown there."""

    chosen: np.ndarray  # int64, flat positions (ascending)
    labels: np.ndarray  # int64, the original token at each
    shown: np.ndarray  # int64, [MASK], a random token or the original at each
    n_masked: np.ndarray  # int64, per row

    def apply(self, ids: np.ndarray) -> np.ndarray:
        out = ids.copy()
        out[self.chosen] = self.shown
        return out


def mask_budget(seq: Sequences, cand: np.ndarray, cfg: BuildConfig) -> tuple[np.ndarray, np.ndarray]:
    """(candidates per row, positions to predict per row ``k``)."""
    n_cand = np.bincount(seq.row_of[cand], minlength=seq.n_rows)
    k = np.minimum(cfg.max_predictions_per_seq, np.maximum(1, np.rint(n_cand * cfg.masked_lm_prob).astype(np.int64)))
    k[n_cand == 0] = 0
    return n_cand, k


def draw_masks(
    seq: Sequences, cand: np.ndarray, k: np.ndarray, cfg: BuildConfig, tables: VocabTables, draws: Draws
) -> MaskSet:
    """One mask set: the scheme chooses the positions, ``replace`` applies the replacement split."""
    chosen = POSITION_SCHEMES[cfg.mask_scheme](seq, cand, k, cfg, draws)
    return replace(seq, chosen, k, cfg, tables, draws)


def mask_documents(
    documents: Sequence[tuple[Sequence[Pair], np.ndarray]],
    tables: VocabTables,
    cfg: BuildConfig,
    counts: Counter,
) -> Instances:
    """Assemble and mask the instances of many documents at once.

    Three steps, each its own function: ``assemble`` lays out ``[CLS] A [SEP] B [SEP]``, a
    position scheme of ``POSITION_SCHEMES`` chooses what to predict, ``replace`` applies the
    replacement split (80/10/10 by default). Each document's random numbers come from its own
    stream, named by its seed (``pairing.document_seed``: the second item of each entry), so the
    result for a document does not depend on which others share the batch.

    ``dynamic_masking``: the rows stay unmasked (the loader masks them; ``mask_rows``), with their
    word starts for word schemes. ``mask_copies`` N > 1: the rows stay unmasked and carry N mask
    sets, drawn one after the other from each document's stream; candidates are counted once
    per set, so the manifest's shares stay per token.
    """
    seq = assemble([pairs for pairs, _ in documents], tables)
    draws = DocumentDraws(np.array([seed for _, seed in documents], dtype=np.uint64).reshape(-1, 2), seq.rows_per_doc)
    cand = ~tables.is_special[seq.ids]  # ordinary tokens only ([CLS]/[SEP]/[UNK]… are special ids)
    n_cand, k = mask_budget(seq, cand, cfg)
    sets = [] if cfg.dynamic_masking else [draw_masks(seq, cand, k, cfg, tables, draws) for _ in range(cfg.mask_copies)]
    order_key = draws.words(np.ones(seq.n_rows, np.int64))
    counts["mask_candidates"] += int(n_cand.sum()) * len(sets)

    tok = token_dtype(tables.vocab_size)
    pos_dtype = position_dtype(cfg.max_seq_length)
    extra: dict = {}
    if cfg.dynamic_masking:
        ids = seq.ids
        chosen, labels, n_masked = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(seq.n_rows, np.int64)
        if cfg.mask_scheme in WORD_SCHEMES:
            extra["word_starts"] = seq.word_start.copy()
    elif len(sets) == 1:
        ids, chosen, labels, n_masked = sets[0].apply(seq.ids), sets[0].chosen, sets[0].labels, sets[0].n_masked
    else:  # rows stay unmasked; each row's sets one after the other
        ids = seq.ids
        order = np.argsort(np.concatenate([seq.row_of[m.chosen] for m in sets]), kind="stable")
        chosen = np.concatenate([m.chosen for m in sets])[order]
        labels = np.concatenate([m.labels for m in sets])[order]
        n_masked = np.sum([m.n_masked for m in sets], axis=0)
        extra["masked_inputs"] = np.concatenate([m.shown for m in sets])[order].astype(tok)
        extra["set_sizes"] = np.stack([m.n_masked for m in sets], axis=1).astype(np.int32)
    return Instances(
        input_ids=ids.astype(tok),
        lengths=seq.lengths.astype(np.int32),
        a_len=seq.a_len.astype(np.uint16),
        masked_positions=(chosen - seq.row_start[seq.row_of[chosen]]).astype(pos_dtype),
        num_masked=n_masked.astype(np.int32),
        masked_labels=labels.astype(tok),
        next_sentence_label=seq.nsp.astype(np.int8),
        order_key=order_key,
        **extra,
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


def table_word_starts(ids: np.ndarray, row_of: np.ndarray, tables: VocabTables) -> np.ndarray:
    """Word starts from the vocabulary: an ordinary token that is not a "##" piece, or whose left
    neighbour is no ordinary token (a piece right after [CLS]/[SEP] or a truncated front)."""
    cand = ~tables.is_special[ids]
    prev_cand = np.concatenate(([False], cand[:-1])) & np.concatenate(([False], row_of[1:] == row_of[:-1]))
    return cand & (~tables.is_continuation[ids] | ~prev_cand)


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


def choose_tokens(seq: Sequences, cand: np.ndarray, k: np.ndarray, cfg: BuildConfig, draws: Draws) -> np.ndarray:
    """``k[r]`` candidate positions of each row r, uniformly at random (flat, ascending)."""
    keys = draws.random(seq.lengths)
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


def replace(
    seq: Sequences, chosen: np.ndarray, k: np.ndarray, cfg: BuildConfig, tables: VocabTables, draws: Draws
) -> MaskSet:
    """``mask_replace_prob`` [MASK], ``random_replace_prob`` a random ordinary token (never the
    original), the rest kept.

    Per row, ``k`` draws of the kind and ``k`` of a replacement token; the row's chosen positions
    (at most ``k``) take the first of them in order.
    """
    u_all = draws.random(k)
    r_all = draws.integers(len(tables.replacement_ids) - 1, k)
    chosen_row = seq.row_of[chosen]
    first = np.searchsorted(chosen_row, np.arange(seq.n_rows), side="left")
    pick = (np.cumsum(k) - k)[chosen_row] + np.arange(len(chosen)) - first[chosen_row]
    u = u_all[pick]
    draw = r_all[pick]

    labels = seq.ids[chosen]
    is_mask = u < cfg.mask_replace_prob
    is_random = u >= 1.0 - cfg.random_replace_prob
    draw = draw[is_random]
    # Skip the original's own slot so the replacement always differs from it.
    draw += draw >= tables.replacement_rank[labels[is_random]]
    shown = labels.copy()
    shown[is_mask] = tables.mask_id
    shown[is_random] = tables.replacement_ids[draw]
    return MaskSet(chosen, labels, shown, np.bincount(chosen_row, minlength=seq.n_rows))


@dataclass
class _Words:
    """The words among a batch's candidates."""

    pos: np.ndarray  # flat positions of the candidates
    word_pos: np.ndarray  # word of each candidate
    size: np.ndarray  # tokens per word
    row: np.ndarray  # row of each word
    first: np.ndarray  # flat position of each word's first token
    after_gap: np.ndarray  # bool per word: the token before it is no candidate (or it opens its row)


def _words(seq: Sequences, cand: np.ndarray) -> _Words:
    prev_cand = np.concatenate(([False], cand[:-1])) & np.concatenate(([False], seq.row_of[1:] == seq.row_of[:-1]))
    starts = cand & (seq.word_start | ~prev_cand)  # a candidate after a non-candidate always starts a word
    word_of = np.cumsum(starts) - 1  # word index of each position (valid where cand)
    pos = np.flatnonzero(cand)
    first = np.flatnonzero(starts)
    return _Words(
        pos=pos,
        word_pos=word_of[pos],
        size=np.bincount(word_of[pos], minlength=len(first)),
        row=seq.row_of[first],
        first=first,
        after_gap=~prev_cand[first],
    )


def _take_in_random_order(
    size: np.ndarray, row: np.ndarray, k: np.ndarray, n_rows: int, draws: Draws, *, clip: bool
) -> np.ndarray:
    """Tokens taken of each group (groups of ``size`` tokens, in ``row``), groups in random order.

    Without ``clip``, google-research/bert's rule: a group that would overflow the row's ``k`` is
    skipped and the next ones are still tried. Array code in passes: each pass takes, in every row,
    the groups that fit one after the other from the first still open, then closes every group
    larger than what is left; a row with open groups takes at least one per pass, so the passes end
    (their number is about the number of skips). With ``clip``, groups are taken while they fit and
    the one that would overflow gets what is left.
    """
    keys = draws.random(np.bincount(row, minlength=n_rows))
    order = np.lexsort((keys, row))  # random group order inside each row
    sizes = size[order]
    row_o = row[order]
    row_first = np.searchsorted(row_o, np.arange(n_rows), side="left")
    taken = np.zeros(len(size), dtype=np.int64)

    def within_row(values: np.ndarray) -> np.ndarray:  # running sum of values inside each row
        csum = np.cumsum(values)
        return csum - np.concatenate(([0], csum))[row_first][row_o]

    if clip:
        within = within_row(sizes)
        limit = k[row_o]
        taken[order] = np.where(within <= limit, sizes, 0)
        over = (within > limit) & (within - sizes < limit)
        taken[order[over]] = (limit - (within - sizes))[over]
        return taken
    left = k.astype(np.int64).copy()
    open_ = sizes <= left[row_o]
    while open_.any():
        fits = open_ & (within_row(np.where(open_, sizes, 0)) <= left[row_o])
        taken[order[fits]] = sizes[fits]
        left -= np.bincount(row_o[fits], weights=sizes[fits], minlength=n_rows).astype(np.int64)
        open_ &= ~fits & (sizes <= left[row_o])
    return taken


def choose_whole_words(seq: Sequences, cand: np.ndarray, k: np.ndarray, cfg: BuildConfig, draws: Draws) -> np.ndarray:
    """Whole words (``seq.word_start`` and the pieces after it) at random while they fit in ``k``."""
    w = _words(seq, cand)
    taken = _take_in_random_order(w.size, w.row, k, seq.n_rows, draws, clip=False)
    return np.sort(w.pos[(taken > 0)[w.word_pos]])


def cut_spans(seq: Sequences, cand: np.ndarray, cfg: BuildConfig, draws: Draws) -> tuple[_Words, np.ndarray]:
    """The words and, per word, the span it belongs to: each stretch of consecutive candidate words
    (a segment between specials) is cut into spans of ``min(Geometric(span_p), span_max_words)`` words.

    Geometric lengths are memoryless, so the cut needs no loop: a word opens a new span when it
    opens its stretch, or with probability ``span_p``, or when ``span_max_words`` words have passed
    since the last such start (the clip; the next span's length is again geometric).
    """
    w = _words(seq, cand)
    natural = w.after_gap | (draws.random(np.bincount(w.row, minlength=seq.n_rows)) < cfg.span_p)
    index = np.arange(len(w.size))
    since = index - np.maximum.accumulate(np.where(natural, index, 0)) if len(index) else index
    opens = natural | (since % cfg.span_max_words == 0)
    return w, np.cumsum(opens) - 1


def choose_spans(seq: Sequences, cand: np.ndarray, k: np.ndarray, cfg: BuildConfig, draws: Draws) -> np.ndarray:
    """SpanBERT's span masking: spans of whole words, in random order while they fit in ``k``.

    ``cut_spans`` tiles every row's words with spans (so they start at word starts, cover whole
    words and never overlap); spans are then taken in random order like whole words. The span that
    would overflow the budget is clipped to its leading whole words that fit (SpanBERT clips it at
    the token budget, even inside a word), and selection stops there: a row gets at most ``k``
    tokens, less than ``k`` by less than one word. Two spans taken side by side read as one longer
    masked stretch, as in SpanBERT. Span lengths are clipped, not renormalised, at
    ``span_max_words``: mean ``(1 - (1 - p) ** max) / p`` words (4.46 at 0.2 and 10; SpanBERT's code
    renormalises over 1..10, mean 3.8).
    """
    w, span_of = cut_spans(seq, cand, cfg, draws)
    n_spans = int(span_of[-1]) + 1 if len(span_of) else 0
    span_size = np.bincount(span_of, weights=w.size, minlength=n_spans).astype(np.int64)
    span_opens = np.flatnonzero(np.diff(np.concatenate(([-1], span_of))) > 0)  # first word of each span
    taken = _take_in_random_order(span_size, w.row[span_opens], k, seq.n_rows, draws, clip=True)
    cum = np.cumsum(w.size)
    upto = cum - (cum - w.size)[span_opens][span_of]  # tokens of the span up to and including each word
    return np.sort(w.pos[(upto <= taken[span_of])[w.word_pos]])


POSITION_SCHEMES = {"token": choose_tokens, "whole-word": choose_whole_words, "span": choose_spans}
"""How positions to predict are chosen (``BuildConfig.mask_scheme``): one function per scheme, the
same signature each. A new scheme is a function here and its name in this table."""


# --- masks drawn for stored rows (the loader's dynamic masks) ------------------------------------


def row_sequences(
    ids: np.ndarray, lengths: np.ndarray, word_start: np.ndarray | None, tables: VocabTables
) -> Sequences:
    """Stored unmasked rows (flat ids, lengths, optional stored word starts) as ``Sequences``."""
    ids = np.asarray(ids, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    row_of, row_start = _segment_rows(lengths)
    n = len(lengths)
    return Sequences(
        ids=ids,
        lengths=lengths,
        a_len=np.zeros(n, np.int64),
        nsp=np.zeros(n, np.int64),
        row_of=row_of,
        row_start=row_start,
        rows_per_doc=np.ones(n, np.int64),
        doc_of_row=np.arange(n),
        word_start=np.asarray(word_start, dtype=bool)
        if word_start is not None
        else table_word_starts(ids, row_of, tables),
    )


def mask_rows(
    ids: np.ndarray,
    lengths: np.ndarray,
    word_start: np.ndarray | None,
    cfg: BuildConfig,
    tables: VocabTables,
    keys: np.ndarray,
) -> tuple[Sequences, MaskSet]:
    """Masks for unmasked rows (flat ``ids``, per-row ``lengths``), each row drawn from its own
    stream ``keys[r]`` (``row_keys``): the dynamic masks, the same for the same key on any machine.
    The same budget, scheme and replacement as the build's static masks."""
    seq = row_sequences(ids, lengths, word_start, tables)
    cand = ~tables.is_special[seq.ids]
    _, k = mask_budget(seq, cand, cfg)
    return seq, draw_masks(seq, cand, k, cfg, tables, KeyedDraws(keys))


ROWS_PER_MASK_CALL = 1024  # rows masked per call when measuring a shard: bounds the arrays of one call


def shard_mask_counters(
    ids: np.ndarray,
    lengths: np.ndarray,
    word_starts: np.ndarray | None,
    path: str,
    cfg: BuildConfig,
    tables: VocabTables,
    epoch: int = 0,
) -> Counter:
    """The masks the loader draws for a dynamic shard's rows (flat ``ids``, ``lengths``, stored
    ``word_starts``) at ``epoch``, counted by kind, with their candidates: what the manifest
    records and ``validate`` recomputes."""
    from corpusgen import stats

    counts: Counter = Counter()
    offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    key = shard_key(path)
    for lo in range(0, len(lengths), ROWS_PER_MASK_CALL):
        hi = min(lo + ROWS_PER_MASK_CALL, len(lengths))
        a, b = offsets[lo], offsets[hi]
        keys = row_keys(cfg.random_seed, epoch, key, np.arange(lo, hi))
        ws = word_starts[a:b] if word_starts is not None else None
        seq, m = mask_rows(ids[a:b], lengths[lo:hi], ws, cfg, tables, keys)
        counts.update(stats.mask_kinds(m.shown, m.labels, tables.mask_id))
        counts["mask_candidates"] += int((~tables.is_special[seq.ids]).sum())
    return counts
