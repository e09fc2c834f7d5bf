"""Counter-based random streams: the i-th number of a stream is a hash of (its 64-bit key, i).

Nothing is sequential, so the numbers of many streams (rows, documents) are drawn at once with a
few array operations, and a stream's numbers depend on its key alone, never on which others share
the batch or on a worker's history. The hash is SplitMix64's finaliser, a bijection of 64-bit words.
The build's masks (``masking.DocumentDraws``) and the loader's dynamic masks (``masking.row_keys``)
draw from here (pairing keeps a Philox generator per document: measured no slower).
"""

from __future__ import annotations

import numpy as np

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: the stream's step
MASKING = 0  # a purpose: one document seed names an independent stream for each purpose


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on uint64."""
    return _mix64_in_place(np.array(z, dtype=np.uint64))


def _mix64_in_place(z: np.ndarray) -> np.ndarray:
    """``mix64`` overwriting ``z`` (a uint64 array of the caller's): no temporaries but one."""
    t = np.empty_like(z)
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        np.right_shift(z, np.uint64(shift), out=t)
        z ^= t
        z *= np.uint64(factor)
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    return z


class KeyedDraws:
    """Random numbers for many streams, one per 64-bit key: ``per_key[k]`` numbers of stream k,
    streams in order, as one flat array. Each call draws the next numbers of every stream."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        self.calls = 0

    def words(self, per_key: np.ndarray) -> np.ndarray:
        """Random 64-bit words (uint64)."""
        self.calls += 1
        per_key = np.asarray(per_key, dtype=np.int64)
        base = mix64(self.keys ^ np.uint64((self.calls * GOLDEN) & M64))
        # number i (from 1) of stream k is mix64(base[k] + i * GOLDEN); with j the flat index and
        # first[k] the flat index of stream k's first number, i = j - first[k] + 1, so the term is
        # (base[k] - (first[k] - 1) * GOLDEN) + j * GOLDEN: one gather, no per-number index arithmetic
        first = (np.cumsum(per_key) - per_key).astype(np.uint64)
        offset = base - (first - np.uint64(1)) * np.uint64(GOLDEN)  # wraps modulo 2^64, as intended
        x = np.arange(int(per_key.sum()), dtype=np.uint64)
        x *= np.uint64(GOLDEN)
        x += np.repeat(offset, per_key)
        return _mix64_in_place(x)

    def random(self, per_key: np.ndarray) -> np.ndarray:
        """Floats in [0, 1), 53 random bits each."""
        words = self.words(per_key)
        words >>= np.uint64(11)
        out = words.astype(np.float64)
        out *= 2.0**-53
        return out

    def integers(self, high: int, per_key: np.ndarray) -> np.ndarray:
        """Integers in [0, high)."""
        return np.minimum((self.random(per_key) * high).astype(np.int64), high - 1)


def stream_keys(seeds: np.ndarray, purpose: int) -> np.ndarray:
    """The 64-bit stream keys of documents named by 128-bit seeds (``pairing.document_seed``; shape
    (documents, 2), uint64) for ``purpose`` (``MASKING``): independent streams of one seed."""
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1, 2)
    return mix64(seeds[:, 0] ^ mix64(seeds[:, 1] + np.uint64(((purpose + 1) * GOLDEN) & M64)))
