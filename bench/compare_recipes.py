"""The same corpus built with different recipes, and a tiny BERT trained on each for the same tokens.

    .venv/bin/python bench/compare_recipes.py [--input FILE] [--docs N] [--tokens N] [--batch-size B]
                                               [--recipes nsp sop doc15 doc30 ...] [--keep DIR]

Each recipe is one ``corpusgen build`` of the same documents (default: the first 8,400 articles of
../shared/data/enwiki, else the bundled sample) with the bundled uncased vocabulary, then
``corpusgen train --model tiny`` for the same number of training tokens (``--tokens``; steps follow
from the build's mean row length). Every model is evaluated on ONE held-out set, the validation
split of the ``doc15`` build (single segments, 15% static masks: the MLM task every recipe shares;
every build holds out the same documents, chosen by a seeded hash of their text). Prints one line per recipe and a JSON summary last. Build time is wall
time of the whole ``corpusgen build`` command on this machine; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_build import BUNDLED, SHARED_ENWIKI, VOCAB, articles  # noqa: E402

RECIPES = {
    "nsp": ["--next-sentence", "nsp"],
    "sop": ["--next-sentence", "sop"],
    "doc15": ["--next-sentence", "doc-sentences", "--masked-lm-prob", "0.15"],
    "doc30": ["--next-sentence", "doc-sentences", "--masked-lm-prob", "0.30"],
    "full15": ["--next-sentence", "full-sentences", "--masked-lm-prob", "0.15"],
    "doc15-dynamic": ["--next-sentence", "doc-sentences", "--dynamic-masking", "--dupe-factor", "1"],
}
COMMON_EVAL = "doc15"


def build(name: str, src: Path, out: Path, extra: list[str]) -> dict:
    cmd = [str(Path(sys.executable).parent / "corpusgen"), "build", str(src), "-o", str(out), "--vocab", str(VOCAB)]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--overwrite", "--workers", "1", *RECIPES[name], *extra], check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    train_shards = [e for e in manifest["shards"] if e["split"] == "train"]
    rows = sum(e["rows"] for e in train_shards)
    tokens = sum(e["tokens"] for e in train_shards)
    return {
        "build_s": round(seconds, 1),
        "train_rows": rows,
        "mean_row_tokens": round(tokens / rows, 1),
        "bytes_per_token": round(
            sum(e["bytes"] for e in manifest["shards"]) / sum(e["tokens"] for e in manifest["shards"]), 3
        ),
        "masked_share": manifest["stats"]["masking"]["masked_share"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=SHARED_ENWIKI if SHARED_ENWIKI.exists() else BUNDLED)
    ap.add_argument("--docs", type=int, default=8400)
    ap.add_argument("--tokens", type=int, default=2_000_000, help="training tokens per model")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--recipes", nargs="+", default=["nsp", "sop", "doc15", "doc30"], choices=sorted(RECIPES))
    ap.add_argument("--build-option", action="append", default=[], help="extra `corpusgen build` option (repeat)")
    ap.add_argument("--keep", type=Path, help="keep the builds and runs here (default: a temporary folder)")
    args = ap.parse_args()

    from trainer.train import TrainConfig, train

    recipes = list(dict.fromkeys([COMMON_EVAL, *args.recipes]))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = work / "input.jsonl"
        src.write_text("\n".join(articles(args.input, args.docs)) + "\n", encoding="utf-8")
        for name in recipes:
            results[name] = build(name, src, work / f"build-{name}", args.build_option)
        for name in recipes:
            r = results[name]
            steps = max(1, round(args.tokens / (args.batch_size * r["mean_row_tokens"])))
            common = dict(model="tiny", steps=steps, batch_size=args.batch_size, seed=0, progress=False, eval_batches=0)
            run = train(
                TrainConfig(
                    data=str(work / f"build-{name}"),
                    out=str(work / f"run-{name}"),
                    eval_data=str(work / f"build-{COMMON_EVAL}"),
                    **common,
                )
            )
            r.update(
                steps=steps,
                train_tokens=round(steps * args.batch_size * r["mean_row_tokens"]),
                heldout_mlm_loss=run["eval"]["mlm_loss"],
                heldout_mlm_acc=run["eval"]["mlm_acc"],
            )
            print(name, json.dumps(r), flush=True)
    print(json.dumps({"input": str(args.input), "docs": args.docs, "common_eval": COMMON_EVAL, "recipes": results}))


if __name__ == "__main__":
    main()
