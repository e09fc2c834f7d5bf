"""Where each document goes: its split (train or validation) and its NSP pool.

Both follow from a seeded hash of the document's content key, never from file names, input
order or worker count, so a build is the same on every runner. Pools are ranges of the pool
hash: pool ``p`` of ``P`` holds the documents whose hash lies in ``[p, p + 1) * 2**64 / P``.
A range (not a modulus) lets a worker write its documents sorted by hash before the pool count
is known and lets each pool read back just its slice of every file.
"""

from __future__ import annotations

import hashlib
import math

from corpusgen.config import BuildConfig

TRAIN = "train"
VALIDATION = "validation"  # Hugging Face's name for it: load_dataset("arrow", data_dir=...) finds it
SPLITS = (TRAIN, VALIDATION)
HASH_SPACE = 1 << 64


def seeded_hash(seed: int, *parts: str) -> int:
    """A stable 64-bit hash of ``parts`` under ``seed`` (the same on every worker and run)."""
    h = hashlib.blake2b((f"{seed}\x1f" + "\x1f".join(parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "little")


def split_of(key: str, cfg: BuildConfig) -> str:
    """``validation`` for the seeded ``heldout_fraction`` of documents, else ``train``."""
    held = seeded_hash(cfg.random_seed, key, "heldout") < cfg.heldout_fraction * 2.0**64
    return VALIDATION if held else TRAIN


def pool_hash(key: str, cfg: BuildConfig) -> int:
    return seeded_hash(cfg.random_seed, key, "pool")


def num_pools(tokens: int, cfg: BuildConfig) -> int:
    """ceil(tokens / nsp_pool_tokens) pools for a split holding ``tokens`` tokens (at least one)."""
    return max(1, math.ceil(tokens / cfg.nsp_pool_tokens))


def pool_range(pool: int, pools: int) -> tuple[int, int]:
    """The half-open range of pool hashes that pool ``pool`` of ``pools`` holds."""
    # ceil: h >= ceil(x) exactly when h >= x for an integer h, so the ranges agree with pool_of
    return -(-pool * HASH_SPACE // pools), -(-(pool + 1) * HASH_SPACE // pools)


def pool_of(h: int, pools: int) -> int:
    return h * pools >> 64
