"""Loader throughput on a synthetic build shaped like real BERT data (or on DIR).

    python bench/bench_loader.py [DIR] [--rows 300000] [--batch-size 256] [--workers 0] [--seconds 10]

Without DIR it writes a build of random tokens (vocab 30522, max_seq_length 128, 20 predictions,
16,384-row zstd record batches, 16-wide length bins) whose lengths follow create_pretraining_data:
90% of instances aim at 125 tokens and end a little short of it (sentences do not split), 10%
(short_seq_prob) aim at a random shorter length. Prints what `corpusgen bench loader` prints.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from corpusgen.config import BuildConfig
from corpusgen.shards import Instances, write_build


def synthetic_build(out: Path, rows: int, seed: int = 0) -> Path:
    cfg = BuildConfig(max_seq_length=128, max_predictions_per_seq=20, zstd_level=3)
    rng = np.random.default_rng(seed)
    short = rng.random(rows) < cfg.short_seq_prob
    lengths = np.where(short, rng.integers(5, 129, rows), 128 - rng.geometric(0.25, rows).clip(max=40) + 1).astype(
        np.int64
    )
    a_len = (rng.random(rows) * (lengths - 3)).astype(np.int64) + 2
    nmask = np.minimum(20, np.maximum(1, np.round(0.15 * (lengths - 3)))).astype(np.int64)
    total = int(lengths.sum())
    ids = rng.integers(999, 30522, total).astype(np.uint16)
    # ascending distinct positions: the first nmask of positions 1.. in each row, spread by a stride
    starts = np.repeat(np.arange(rows), nmask)
    k = np.arange(int(nmask.sum())) - np.repeat(np.cumsum(nmask) - nmask, nmask)
    positions = (1 + k * np.repeat((lengths - 2) // nmask, nmask)).astype(np.uint8)
    inst = Instances(
        input_ids=ids, lengths=lengths, a_len=a_len.astype(np.uint16), masked_positions=positions, num_masked=nmask,
        masked_labels=rng.integers(999, 30522, len(starts)).astype(np.uint16),
        next_sentence_label=rng.integers(0, 2, rows).astype(np.int8), order_key=np.zeros(rows, np.uint64),
    )  # fmt: skip
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"t{i}" for i in range(30522 - 104)]
    write_build(
        out,
        {"train": inst},
        cfg,
        vocab_name="vocab.txt",
        vocab_bytes=("\n".join(tokens) + "\n").encode("utf-8"),
        tokenizer={
            "type": "wordpiece",
            "vocab_size": 30522,
            "do_lower_case": True,
            "pad_id": 0,
            "unk_id": 100,
            "cls_id": 101,
            "sep_id": 102,
            "mask_id": 103,
        },  # fmt: skip
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", nargs="?")
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    from trainer.cli import measure_loader

    with tempfile.TemporaryDirectory() as tmp:
        build = Path(args.dir) if args.dir else synthetic_build(Path(tmp), args.rows)
        r = measure_loader(str(build), batch_size=args.batch_size, workers=args.workers, seconds=args.seconds)
        print(f"{r['seq_per_s']:,.0f} seq/s  {r['tokens_per_s']:,.0f} tokens/s  padding {r['pad_fraction']:.1%}")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
