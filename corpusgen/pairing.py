"""Cut documents into ``[CLS] A [SEP] B [SEP]`` pairs (google-research/bert semantics).

A document is its token ids, sentence after sentence, with sentence boundaries.
``create_pairs`` walks one document the way ``create_instances_from_document``
does: it gathers whole sentences into a chunk until a target length is reached,
splits the chunk at a random sentence into A and B, and with probability 0.5
replaces B by sentences of a *different* document of the same pool.

Where this departs from the reference, it is to keep the NSP labels at exactly
50/50 and to lose no text:

* A chunk closes only once it holds two sentences (google closes it at the target
  length and then *forces* a random B for one-sentence chunks, which biases NSP
  towards "random" whenever short targets or long sentences are common).
* A document's last sentence left alone after the previous chunk is paired with
  the sentence before it (reused as context, counted) rather than forced random.
* The short target (``short_seq_prob``) is drawn for every pair, not once per
  document, so that it is the share of short instances.
* The label is drawn independently of the chunk; a pool of one document cannot
  give a random B, so those pairs stay "next" (counted).
* Truncation removes the same counts the reference's token-by-token loop does
  (from the longer side, ties from B), in closed form; how many go from the front
  is binomial(n, 0.5), as the reference's coin per token.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.random.bit_generator import ISeedSequence

from corpusgen.config import BuildConfig
from corpusgen.shards import NSP_IGNORE

NEXT = 0  # B follows A
RANDOM = 1  # B is from another document (NSP) or A and B are swapped (SOP)


@dataclass
class TokenizedDocument:
    """One document after tokenization.

    ``ids`` holds all its tokens, sentence after sentence; sentence ``i`` is
    ``ids[bounds[i]:bounds[i + 1]]``. ``key`` is the content key (hex) that seeds
    every random choice made for the document. ``word_starts`` (bool, one per token) says where
    words start when the tokenizer told (BPE, Unigram); None: derive it from the id table (``##``).
    """

    key: str
    ids: np.ndarray
    bounds: np.ndarray
    word_starts: np.ndarray | None = None

    @functools.cached_property
    def bound_list(self) -> list[int]:
        """``bounds`` as Python ints: pairing reads them one by one, where numpy scalars cost 10x."""
        return self.bounds.tolist()

    @property
    def n_sentences(self) -> int:
        return len(self.bounds) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.bounds[-1])


class Pair(NamedTuple):
    tokens_a: np.ndarray
    tokens_b: np.ndarray | None  # None when next_sentence == "none"
    label: int  # NEXT, RANDOM, or NSP_IGNORE for single segments
    short: bool  # built with a short target length
    starts_a: np.ndarray | None = None  # word starts of tokens_a, when the document carries them
    starts_b: np.ndarray | None = None  # word starts of tokens_b


DRAWS_PER_PAIR = 6  # uniforms a pair may use: A's end, the label, B's document and sentence, the next target (2)


def min_sentences(cfg: BuildConfig) -> int:
    """Sentences a document needs: a pair is cut from two (nsp, sop); a single segment from one."""
    return 2 if cfg.has_pairs else 1


class _PhiloxKey(ISeedSequence):
    """Hands Philox its 128-bit key as the seed sequence's state: the stream of ``Philox(key=k)``.

    ``Philox(key=k)`` also builds an unused ``SeedSequence()``, which reads OS entropy: 15 µs of the
    21 µs a generator cost, a fifth of pairing's time at dupe 5 (profiled). This costs 6 µs.
    """

    __slots__ = ("key",)

    def __init__(self, key: np.ndarray) -> None:
        self.key = key

    def generate_state(self, n_words: int, dtype=np.uint32) -> np.ndarray:
        if n_words != 2 or np.dtype(dtype) != np.uint64:
            raise ValueError("a Philox key is two 64-bit words")
        return self.key


def document_seed(seed: int, key: str, dupe: int) -> np.ndarray:
    """The 128-bit name of every random stream of one (document, dupe), as two 64-bit words: a hash
    of seed, document key and dupe. Pairing's generator (``seeded_rng``) and the masking stream
    (``masking.DocumentDraws``) are keyed by it; nothing else seeds them."""
    return np.frombuffer(hashlib.blake2b(f"{seed}:{key}:{dupe}".encode(), digest_size=16).digest(), dtype=np.uint64)


def seeded_rng(seed_words: np.ndarray) -> np.random.Generator:
    """The generator keyed by ``document_seed``'s words.

    Philox is counter-based: a 128-bit key names an independent stream, and keying it is cheap
    (no seed-sequence mixing per document).
    """
    return np.random.Generator(np.random.Philox(_PhiloxKey(seed_words)))


def document_rng(seed: int, key: str, dupe: int) -> np.random.Generator:
    """The generator of pairing's random choices for one (document, dupe)."""
    return seeded_rng(document_seed(seed, key, dupe))


def truncation_counts(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
    """Tokens to remove from A and from B so that len_a + len_b <= max_tokens.

    The same counts as google's loop "remove one token from the longer segment
    (B on ties) until it fits", computed without the loop.
    """
    excess = len_a + len_b - max_tokens
    if excess <= 0:
        return 0, 0
    if len_a > len_b:
        first = min(excess, len_a - len_b)
        rest = excess - first
        return first + rest // 2, (rest + 1) // 2
    first = min(excess, len_b - len_a)
    rest = excess - first
    return rest // 2, first + (rest + 1) // 2


def create_pairs(
    doc_index: int,
    pool: Sequence[TokenizedDocument],
    cfg: BuildConfig,
    rng: np.random.Generator,
    counts: Counter,
) -> list[Pair]:
    """The pairs of one document for one dupe, drawing B from ``pool`` when random.

    The uniform numbers a document's walk needs (at most ``DRAWS_PER_PAIR`` a pair) are drawn
    from ``rng`` in one call first, then read one by one; integers are ``int(u * n)``. Drawing
    them one call each cost several times the rest of the walk. Truncation's binomial draws
    come from ``rng`` after the block.
    """
    doc = pool[doc_index]
    bounds = doc.bound_list
    n = len(bounds) - 1
    mode = cfg.next_sentence
    max_num_tokens = cfg.max_num_tokens
    short_seq_prob = cfg.short_seq_prob
    min_segments = min_sentences(cfg)
    if n < min_segments:
        raise ValueError(
            f"document {doc.key} has {n} sentence(s); pairs need {min_segments} (filter such documents first)"
        )
    # A pair takes at least one new sentence, so a document gives at most n pairs.
    uniform = iter(rng.random(DRAWS_PER_PAIR * (n + 1)).tolist()).__next__

    def draw_target() -> tuple[int, bool]:
        # Mostly fill max_seq_length; sometimes (short_seq_prob) aim shorter so the model
        # also sees short sequences, as in fine-tuning. Drawn per pair, not per document
        # (as the reference does), so that short_seq_prob is the share of short instances.
        if uniform() < short_seq_prob:
            return 2 + int(uniform() * (max_num_tokens - 1)), True
        return max_num_tokens, False

    target, short = draw_target()
    covered = np.zeros(bounds[-1], dtype=bool)
    pairs: list[Pair] = []
    reused_sentences = placed_own = borrowed = no_other = 0
    start = 0
    i = 0
    while i < n:  # start == i here: the chunk closes at its first sentence end at or past the target
        i = min(n, max(start + min_segments, bisect.bisect_left(bounds, bounds[start] + target, start + 1)))
        reused = i - start < min_segments
        if reused:
            # Only the document's last sentence is left: pair it with the one before.
            start -= 1
            reused_sentences += 1
        nseg = i - start
        if mode == "none":
            a_lo, a_hi = bounds[start], bounds[i]
            cut_a, _ = truncation_counts(a_hi - a_lo, 0, max_num_tokens)
            front = int(rng.binomial(cut_a, 0.5)) if cut_a else 0
            a_lo, a_hi = a_lo + front, a_hi - (cut_a - front)
            covered[a_lo:a_hi] = True
            placed_own += a_hi - a_lo
            starts = doc.word_starts[a_lo:a_hi] if doc.word_starts is not None else None
            pairs.append(Pair(doc.ids[a_lo:a_hi], None, NSP_IGNORE, short, starts_a=starts))
            start = i
            target, short = draw_target()
            continue

        a_end = 1 if nseg == 1 else 1 + int(uniform() * (nseg - 1))  # A = first a_end sentences
        a_lo, a_hi = bounds[start], bounds[start + a_end]
        is_random = uniform() < 0.5
        b_doc: TokenizedDocument = doc
        b_own = True
        if is_random and mode == "nsp":
            if len(pool) < 2:
                no_other += 1
                is_random = False
            else:
                b_own = False
                r = int(uniform() * (len(pool) - 1))
                b_doc = pool[r + (r >= doc_index)]
                ob = b_doc.bound_list
                rs = int(uniform() * (len(ob) - 1))
                target_b = max(1, target - (a_hi - a_lo))
                rend = bisect.bisect_left(ob, ob[rs] + target_b)
                rend = min(max(rend, rs + 1), len(ob) - 1)
                b_lo, b_hi = ob[rs], ob[rend]
                if reused:
                    # The left-over last sentence becomes A itself: putting it back would loop.
                    a_lo, a_hi = bounds[n - 1], bounds[n]
                else:
                    # The chunk's unused sentences go back to be used by the next pair.
                    i = start + a_end
        if b_own:
            b_lo, b_hi = a_hi, bounds[i]

        cut_a, cut_b = truncation_counts(a_hi - a_lo, b_hi - b_lo, max_num_tokens)
        if cut_a:
            front = int(rng.binomial(cut_a, 0.5))
            a_lo, a_hi = a_lo + front, a_hi - (cut_a - front)
        if cut_b:
            front = int(rng.binomial(cut_b, 0.5))
            b_lo, b_hi = b_lo + front, b_hi - (cut_b - front)
        covered[a_lo:a_hi] = True
        placed_own += a_hi - a_lo
        if b_own:
            covered[b_lo:b_hi] = True
            placed_own += b_hi - b_lo
        else:
            borrowed += b_hi - b_lo
        tokens_a, tokens_b = doc.ids[a_lo:a_hi], b_doc.ids[b_lo:b_hi]
        starts_a = doc.word_starts[a_lo:a_hi] if doc.word_starts is not None else None
        starts_b = b_doc.word_starts[b_lo:b_hi] if b_doc.word_starts is not None else None
        if mode == "sop" and is_random:
            tokens_a, tokens_b = tokens_b, tokens_a
            starts_a, starts_b = starts_b, starts_a
        pairs.append(
            Pair(tokens_a, tokens_b, RANDOM if is_random else NEXT, short, starts_a=starts_a, starts_b=starts_b)
        )
        start = i
        target, short = draw_target()

    for name, value in (("sentences_reused", reused_sentences), ("tokens_placed_own", placed_own),
                        ("tokens_borrowed", borrowed), ("nsp_no_other_document", no_other)):  # fmt: skip
        if value:
            counts[name] += value
    kept = int(np.count_nonzero(covered))
    counts["tokens_covered"] += kept
    counts["tokens_truncated_away"] += bounds[-1] - kept
    return pairs
