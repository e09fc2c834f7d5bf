"""End-to-end build throughput against the bare tokenizer, stage by stage, with peak memory.

    .venv/bin/python bench/bench_build.py [--input FILE] [--docs N] [--workers 1 2] [--dupe-factor 1 5]
                                          [--pin-one-worker] [--zstd-level L]

Default input: the first 8,400 articles with body text (13.6 MB) of ../shared/data/enwiki when
present, else the bundled 3,000-article sample. The work is ``corpusgen bench build``'s
(``pipelines/bench.py``): the baseline is Hugging Face tokenizers' ``encode_batch`` over the same
documents' texts on the same cores, best of three; each build runs in a child process. The last
line is JSON. Never asserts on time: compare with the project's targets (README, "Figures"): a
build at least half as fast as the bare tokenizer at dupe_factor 1, dupe_factor 5 at most 1.6 times
dupe_factor 1, shards of at most 1.6 bytes per token at the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpusgen.config import BuildConfig  # noqa: E402
from pipelines.bench import bench_build  # noqa: E402

SHARED_ENWIKI = ROOT.parent / "shared" / "data" / "enwiki" / "enwiki_wikiextractor_40files.jsonl.zst"
BUNDLED = ROOT / "corpusgen" / "data" / "enwiki_sample.jsonl.zst"
VOCAB = ROOT / "corpusgen" / "data" / "bert-base-uncased-vocab.txt"


def articles(path: Path, limit: int) -> list[str]:
    """JSONL lines of the first ``limit`` articles with body text (not title-only stubs)."""
    raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode("utf-8")
    out = []
    for line in raw.splitlines():
        if json.loads(line)["text"].count("\n") > 2:
            out.append(line)
            if len(out) >= limit:
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=SHARED_ENWIKI if SHARED_ENWIKI.exists() else BUNDLED)
    ap.add_argument("--docs", type=int, default=8400, help="at most this many articles with body text")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dupe-factor", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--zstd-level", type=int, default=BuildConfig().zstd_level)
    ap.add_argument("--pin-one-worker", action="store_true", help="run 1-worker builds under taskset -c 0")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input.jsonl"
        src.write_text("\n".join(articles(args.input, args.docs)) + "\n", encoding="utf-8")
        result = bench_build(
            [str(src)],
            vocab_path=str(VOCAB),
            workers=args.workers,
            dupe_factors=args.dupe_factor,
            cfg=BuildConfig(zstd_level=args.zstd_level),
            taskset_one=args.pin_one_worker,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
