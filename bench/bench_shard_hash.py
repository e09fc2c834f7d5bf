"""What the loader's shard sha256 check costs: hashing time against the loader's time for the same shards.

    PYTHONPATH=. python bench/bench_shard_hash.py [DIR] [--rows 100000] [--batch-size 256] [--repeat 5]

The loader hashes each shard once per process, before it first reads a row of it (streamed, 1 MiB
blocks). This times one epoch of the train split in a fresh dataset (every shard hashed on first
use; the time spent in ``verify_shard`` is measured apart) and a second epoch in the same process
(nothing hashed). Both read from the page cache (a warm-up epoch runs first), so the figures compare
CPU work. Without DIR it uses bench_loader's synthetic build (random tokens: they compress worse than
text, so the hash share is if anything overstated). Prints one JSON line per repeat, then the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trainer.data as data  # noqa: E402
from trainer.data import ShardDataset, ShardLoader  # noqa: E402


def measure(build: str, batch_size: int) -> dict:
    spent = [0.0]
    real = data.verify_shard

    def timed(path: str, sha256: str) -> None:
        t = time.perf_counter()
        real(path, sha256)
        spent[0] += time.perf_counter() - t

    data.verify_shard = timed
    try:
        ds = ShardDataset(build, batch_size=batch_size, seed=0, epochs=1, drop_last=False)
        t = time.perf_counter()
        batches = sum(1 for _ in ShardLoader(ds))
        first = time.perf_counter() - t
        hashing = spent[0]
        ds.batches_consumed = 0
        t = time.perf_counter()
        sum(1 for _ in ShardLoader(ds))
        second = time.perf_counter() - t
    finally:
        data.verify_shard = real
    mb = sum(e["bytes"] for e in ds.manifest["shards"] if e.get("split", "train") == "train") / 1e6
    return {
        "batches": batches,
        "shard_MB": round(mb, 2),
        "hash_MB_per_s": round(mb / hashing, 1),
        "loader_MB_per_s": round(mb / second, 1),
        "loader_seq_per_s": round(ds.num_rows / second, 1),
        "first_epoch_s": round(first, 4),
        "second_epoch_s": round(second, 4),
        "hash_share_of_first_epoch": round(hashing / second, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build = args.dir
        if build is None:
            from bench_loader import synthetic_build

            build = str(synthetic_build(Path(tmp) / "build", args.rows))
        measure(build, args.batch_size)  # warm-up: imports, page cache
        runs = [measure(build, args.batch_size) for _ in range(args.repeat)]
    for r in runs:
        print(json.dumps(r))
    keys = ("hash_MB_per_s", "loader_MB_per_s", "hash_share_of_first_epoch")
    print(json.dumps({"median": {k: statistics.median(r[k] for r in runs) for k in keys}, "build": build}))


if __name__ == "__main__":
    main()
