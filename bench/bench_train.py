"""Training step on CPU: the trainer against transformers.BertForPreTraining, same config and batches.

    python bench/bench_train.py [--steps 5] [--warmup 2] [--no-compile] [--only tiny|base] [--threads N]

Runs `corpusgen bench train --against-hf` (trainer/bench.py) for tiny at batch 64 and base at batch
8, sequence 128, 20 predictions per row (24 after the loader's rounding), fp32, AdamW (the same
optimizer object for both), eager and with torch.compile (both models compiled). Each model's
figure is its faster of eager and compiled, as the issue's target reads; the ratio is of those.
The two models alternate step by step, so a loaded machine slows both alike. Prints one line
per run and a JSON summary last.
"""

from __future__ import annotations

import argparse
import json

import torch

from trainer.bench import measure_train

RUNS = {"tiny": 64, "base": 8}  # model: batch size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="eager only (compiling base on CPU takes minutes)")
    ap.add_argument("--only", choices=sorted(RUNS))
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = {}
    for model, batch in RUNS.items():
        if args.only and model != args.only:
            continue
        runs = {}
        for compile in (False,) if args.no_compile else (False, True):
            r = measure_train(
                model=model, batch_size=batch, seq_len=128, predictions=20, steps=args.steps,
                warmup=args.warmup, device="cpu", compile=compile, against_hf=True,
            )  # fmt: skip
            runs["compiled" if compile else "eager"] = r
            print(
                f"{model:5s} batch {batch:3d} {'compiled' if compile else 'eager   '}: corpusgen {r['seq_per_s']:7.2f} seq/s"
                f" ({r['split_ms']['forward']:.0f}/{r['split_ms']['backward']:.0f}/{r['split_ms']['optimizer']:.0f} ms"
                f" fwd/bwd/opt)  transformers {r['hf_seq_per_s']:7.2f} seq/s"
                f" ({r['hf_split_ms']['forward']:.0f}/{r['hf_split_ms']['backward']:.0f}/{r['hf_split_ms']['optimizer']:.0f})"
                f"  ratio {r['ratio_vs_hf']:.2f}x" + (f"  compile {r['compile_s']:.0f}s / {r['hf_compile_s']:.0f}s" if compile else ""),
                flush=True,
            )  # fmt: skip
        ours = max(runs, key=lambda k: runs[k]["seq_per_s"])
        theirs = max(runs, key=lambda k: runs[k]["hf_seq_per_s"])
        best, hf_best = runs[ours]["seq_per_s"], runs[theirs]["hf_seq_per_s"]
        summary[model] = {
            "batch_size": batch,
            "seq_per_s": best,
            "seq_per_s_mode": ours,
            "hf_seq_per_s": hf_best,
            "hf_seq_per_s_mode": theirs,
            "ratio_vs_hf": round(best / hf_best, 3),
            "threads": runs[ours]["threads"],
        }
        print(
            f"{model}: best corpusgen {best:.2f} seq/s ({ours}) vs transformers {hf_best:.2f} ({theirs}): {best / hf_best:.2f}x"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
