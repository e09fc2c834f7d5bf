"""Near-duplicate detection: MinHash signatures over word n-gram shingles, banded LSH keys, and a
deterministic choice of which documents to drop.

How the pipeline uses it (one pass, no global state):

1. per document: ``sig = minhash_signature(text)``, then emit ``(band_key, (doc_key, sig))`` for each
   key of ``lsh_band_keys(sig, bands, rows)``;
2. group by band key; for each group with two or more documents, ``near_duplicates_to_drop(group)``;
3. the union of those drop sets is the final set (a document is dropped once, whatever the bands),
   each counted as ``stats.NEAR_DUPLICATE_DOCUMENT``.

Clusters are the connected components of the "estimated Jaccard ≥ threshold" graph, and each keeps its
smallest key. The union in step 3 is exactly that even though no worker sees a whole cluster: the
smallest key of a component is the smallest of every band group it appears in, so no group drops it,
and every other member is dropped by the group of an edge that links it to a smaller key. The result
depends on neither bundle order nor worker count.

Choosing the parameters (the S-curve). A pair with Jaccard similarity s becomes a candidate with
probability P(s) = 1 - (1 - s**rows)**bands. Candidates are then verified against the threshold, so a
false candidate only costs a comparison while a missed one is a duplicate kept: the bands are chosen
to put P above 0.9 at the threshold. Defaults: 128 permutations, 16 bands x 8 rows, threshold 0.8
on word 5-grams:

    s      0.5    0.6    0.7    0.8    0.9
    P(s)   0.06   0.24   0.61   0.95   1.00

:func:`lsh_params` computes (bands, rows) for another threshold or signature size.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from corpusgen import unicode_ranges
from corpusgen.streams import mix64

__all__ = [
    "NearDupConfig",
    "candidate_probability",
    "estimate_jaccard",
    "lsh_band_keys",
    "lsh_params",
    "minhash_signature",
    "near_duplicates_to_drop",
    "shingle_hashes",
]

# Permutations are the multiply-add-shift family h(x) = ((a*x + b) mod 2**64) >> 32 (Dietzfelbinger
# 1996): strongly universal for 32-bit x with 64-bit a, b, like (a*x + b) mod p, but the mod 2**64 is
# free in uint64 arithmetic; measured 5x faster than the mod-prime form here. The shift is monotone, so
# it is applied after the min, to num_perm values instead of shingles x num_perm.
_SHINGLE_BITS = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)  # signature of a text without words: not below any real value
_CHUNK = 1024  # shingles per block of the (shingles x permutations) matrix: 1 MiB, stays in cache

_CJK = unicode_ranges.UNSPACED
# Words are \w+ runs; each Han/Kana character is a word of its own (no spaces in Chinese/Japanese).
# Stdlib re: three times faster than the regex module on this pattern.
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")

# Odd 64-bit constants that weight the words of an n-gram by position, so "a b" and "b a" differ.
_POSITION_MULTIPLIERS = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
        0x2545F4914F6CDD1D,
        0x85EBCA77C2B2AE63,
        0x27D4EB2F165667C5,
        0x61C8864680B583EB,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
        0x589965CC75374CC3,
    ],
    dtype=np.uint64,
)
_MAX_NGRAM = len(_POSITION_MULTIPLIERS)


@dataclass(frozen=True)
class NearDupConfig:
    """Near-duplicate settings; ``bands * rows`` must not exceed ``num_perm``."""

    threshold: float = 0.8
    num_perm: int = 128
    bands: int = 16
    rows: int = 8
    ngram: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"NearDupConfig: threshold={self.threshold} must be in (0, 1]")
        if self.num_perm < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError("NearDupConfig: num_perm, bands and rows must be positive")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"NearDupConfig: bands*rows={self.bands * self.rows} exceeds num_perm={self.num_perm}; "
                f"lsh_params({self.threshold}, {self.num_perm}) suggests {lsh_params(self.threshold, self.num_perm)}"
            )
        if not 1 <= self.ngram <= _MAX_NGRAM:
            raise ValueError(f"NearDupConfig: ngram={self.ngram} must be in [1, {_MAX_NGRAM}]")


def _word_hash(word: str) -> int:
    # blake2b rather than hash(): Python's string hash is salted per process.
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


# Word -> hash, per process. Word frequencies are Zipfian, so nearly every lookup hits; cleared when
# large rather than evicted one by one (an LRU costs more per hit than a miss costs here).
_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_LIMIT = 1 << 21


def _word_hashes(words: list[str]) -> np.ndarray:
    try:
        return np.fromiter(map(_WORD_CACHE.__getitem__, words), dtype=np.uint64, count=len(words))
    except KeyError:
        if len(_WORD_CACHE) > _WORD_CACHE_LIMIT:
            _WORD_CACHE.clear()
        for w in set(words).difference(_WORD_CACHE):
            _WORD_CACHE[w] = _word_hash(w)
        return np.fromiter(map(_WORD_CACHE.__getitem__, words), dtype=np.uint64, count=len(words))


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """Sorted unique 32-bit hashes (as uint64) of the text's word n-grams, words lowercased and
    punctuation ignored. A text shorter than ``ngram`` words is one shingle; no words, no shingles."""
    words = _TOKEN_RE.findall(text.lower())
    if not words:
        return np.empty(0, dtype=np.uint64)
    w = _word_hashes(words)
    n = min(ngram, len(w))
    count = len(w) - n + 1
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n):
            acc += w[i : i + count] * _POSITION_MULTIPLIERS[i]
        return np.unique(mix64(acc) & _SHINGLE_BITS)


@functools.lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # From blake2b, not a NumPy generator, so signatures stay identical across NumPy versions.
    a = np.empty(num_perm, dtype=np.uint64)
    b = np.empty(num_perm, dtype=np.uint64)
    for i in range(num_perm):
        digest = hashlib.blake2b(f"corpusgen-minhash:{seed}:{i}".encode(), digest_size=16).digest()
        a[i] = int.from_bytes(digest[:8], "little") | 1
        b[i] = int.from_bytes(digest[8:], "little")
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def minhash_signature(text: str, num_perm: int = 128, ngram: int = 5, seed: int = 0) -> np.ndarray:
    """MinHash signature (``num_perm`` uint32 values) of the text's word n-gram set.

    Deterministic across processes, machines and NumPy versions for the same (text, num_perm, ngram,
    seed). A text without words gets all ``0xFFFFFFFF``, so such texts match each other: drop empty
    documents before near-duplicate detection.
    """
    shingles = shingle_hashes(text, ngram)
    if not len(shingles):
        return np.full(num_perm, _EMPTY, dtype=np.uint32)
    a, b = _permutations(num_perm, seed)
    sig = np.full(num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingles), _CHUNK):
        block = np.multiply(shingles[start : start + _CHUNK, None], a)
        block += b
        np.minimum(sig, block.min(axis=0), out=sig)
    return (sig >> np.uint64(32)).astype(np.uint32)


def lsh_band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One grouping key per band: 2 bytes of band index + an 8-byte digest of the band's rows.

    Two documents share a key of band i exactly when their rows of band i are equal (up to a 2**-64
    digest collision). Keys are bytes so Beam can group by them as they are.
    """
    if bands * rows > len(signature):
        raise ValueError(f"bands*rows={bands * rows} exceeds the signature length {len(signature)}")
    raw = np.ascontiguousarray(signature[: bands * rows], dtype="<u4").tobytes()
    width = rows * 4
    return [
        i.to_bytes(2, "big") + hashlib.blake2b(raw[i * width : (i + 1) * width], digest_size=8).digest()
        for i in range(bands)
    ]


def estimate_jaccard(sig1: np.ndarray, sig2: np.ndarray) -> float:
    """Share of equal signature values: an unbiased estimate of the Jaccard similarity of the shingle sets."""
    if len(sig1) != len(sig2):
        raise ValueError(f"signatures differ in length: {len(sig1)} vs {len(sig2)}")
    return float(np.count_nonzero(sig1 == sig2)) / len(sig1)


def near_duplicates_to_drop(candidates: Iterable[tuple[str, np.ndarray]], threshold: float = 0.8) -> list[str]:
    """Keys to drop from a group of LSH candidates, sorted: every member of a near-duplicate cluster but
    its smallest key. Pairs count as near duplicates when their estimated Jaccard ≥ ``threshold``.

    Cost: identical signatures collapse first; the rest are compared all-pairs, vectorised, so a group
    of k distinct signatures costs k²·num_perm/2 byte comparisons (k = 2,000: well under a second).
    """
    by_key: dict[str, np.ndarray] = {}
    for key, sig in candidates:
        by_key.setdefault(key, sig)
    if len(by_key) < 2:
        return []
    keys = sorted(by_key)
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:  # the smaller index (= smaller key) stays the root
            parent[max(ri, rj)] = min(ri, rj)

    representatives: list[int] = []
    first_with: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        raw = np.ascontiguousarray(by_key[key], dtype="<u4").tobytes()
        j = first_with.setdefault(raw, i)
        if j != i:
            union(j, i)
        else:
            representatives.append(i)
    if len(representatives) > 1:
        sigs = np.stack([by_key[keys[i]] for i in representatives])
        needed = int(np.ceil(threshold * sigs.shape[1] - 1e-9))
        for a in range(len(representatives) - 1):
            matches = np.count_nonzero(sigs[a + 1 :] == sigs[a], axis=1)
            for b in np.nonzero(matches >= needed)[0]:
                union(representatives[a], representatives[a + 1 + int(b)])
    return [keys[i] for i in range(len(keys)) if find(i) != i]


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that a pair with this Jaccard similarity shares at least one band key."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def lsh_params(threshold: float, num_perm: int, false_negative_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) minimising the weighted areas under the S-curve on the wrong side of ``threshold``.

    Missed pairs are weighted more than false candidates by default: candidates are verified anyway.
    """
    s = np.linspace(0.0, 1.0, 1001)
    below = s < threshold
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands
            fp = np.trapezoid(np.where(below, p, 0.0), s)
            fn = np.trapezoid(np.where(below, 0.0, 1.0 - p), s)
            err = (1.0 - false_negative_weight) * fp + false_negative_weight * fn
            if best is None or err < best[0] - 1e-12:
                best = (err, bands, rows)
    assert best is not None
    return best[1], best[2]
