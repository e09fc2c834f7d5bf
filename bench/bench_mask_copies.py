"""The instance stage of N mask copies against dupe_factor N (and dynamic masking), in one process.

    python bench/bench_mask_copies.py [--copies 5] [--docs 3000] [--repeats 2]

Reads, cleans, splits and tokenizes the bundled Wikipedia sample once, then times, best of
``--repeats``: pairing + masking (``create_instances``) and cutting + encoding the shards (zstd 9)
for ``dupe_factor N``, ``dupe_factor 1, mask_copies N`` and ``dupe_factor 1, dynamic_masking``
(whose build also draws and counts the epoch-0 masks). Prints one line per layout and the ratios.
The whole build (`corpusgen build`) adds reading, cleaning and tokenizing, the same for all three.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from corpusgen.clean import clean_text
from corpusgen.config import BuildConfig
from corpusgen.instances import create_instances
from corpusgen.masking import VocabTables, shard_mask_counters
from corpusgen.pairing import TokenizedDocument
from corpusgen.readers import read_documents
from corpusgen.shards import cut_into_shards
from corpusgen.split import split_sentences
from corpusgen.tokenizer import SubwordTokenizer, VocabFile, tokenize_documents

DATA = Path(__file__).resolve().parents[1] / "corpusgen" / "data"


def documents(wp: SubwordTokenizer, limit: int) -> list[TokenizedDocument]:
    cfg = BuildConfig()
    texts = []
    for text in read_documents(str(DATA / "enwiki_sample.jsonl.zst"), cfg, Counter()):
        texts.append(split_sentences(clean_text(text)))
        if len(texts) == limit:
            break
    keys = [f"{i:032x}" for i in range(len(texts))]
    docs = [
        TokenizedDocument(k, ids, b, word_starts=starts)
        for k, ids, b, starts in tokenize_documents(keys, texts, wp, 125, Counter())
    ]
    return sorted((d for d in docs if d.n_sentences >= 2), key=lambda d: d.key)


def stage(pool, cfg: BuildConfig, tables: VocabTables, repeats: int) -> tuple[float, float, int, int]:
    best = (float("inf"), 0.0, 0, 0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        inst = create_instances(pool, cfg, tables, Counter())
        t1 = time.perf_counter()
        nbytes = 0
        for shard in cut_into_shards(inst, "train", cfg):
            if cfg.dynamic_masking:
                r = shard.rows
                shard_mask_counters(r.input_ids, r.lengths, r.word_starts, shard.path, cfg, tables)
            nbytes += len(shard.encode(cfg, tables.vocab_size)[0])
        t2 = time.perf_counter()
        best = min(best, (t2 - t0, t1 - t0, nbytes, len(inst)))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    tables = VocabTables.from_tokenizer(wp)
    pool = documents(wp, args.docs)
    n = args.copies
    layouts = {
        f"dupe_factor {n}": BuildConfig(dupe_factor=n),
        f"dupe_factor 1, mask_copies {n}": BuildConfig(dupe_factor=1, mask_copies=n),
        "dupe_factor 1, dynamic_masking": BuildConfig(dupe_factor=1, dynamic_masking=True),
    }
    results = {}
    for name, cfg in layouts.items():
        total, pair_mask, nbytes, rows = results[name] = stage(pool, cfg, tables, args.repeats)
        print(
            f"{name:32s} rows {rows:7d}  pair+mask {pair_mask:5.2f} s  cut+encode {total - pair_mask:5.2f} s  "
            f"total {total:5.2f} s  {nbytes / 1e6:5.1f} MB"
        )
    dupe, copies = results[f"dupe_factor {n}"], results[f"dupe_factor 1, mask_copies {n}"]
    print(f"mask_copies {n} / dupe_factor {n}: time {copies[0] / dupe[0]:.2f}, bytes {copies[2] / dupe[2]:.2f}")


if __name__ == "__main__":
    main()
