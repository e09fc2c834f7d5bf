"""Packed rows: how full they are and how much padding the loader's length bins leave.

    python bench/bench_packing.py [--max-seq-length 128] [--docs 3000]

Tokenizes the bundled Wikipedia sample once and packs it as one pool three ways: corpusgen's
full-sentences and doc-sentences rows (``corpusgen.packing``: filled to the position), and
full-sentences closed at sentence ends instead (RoBERTa's ``complete`` mode: whole sentences only,
a sentence that does not fit opens the next row). For each: rows, fill (tokens over rows x
max_seq_length) and the padding bound the loader's batches stay under (``stats.padding_share_bound``:
every row padded to its length bin's top, rounded up to 8) for bins of 8 and 16. The padding the
trainer really sees is measured on a build with ``corpusgen bench loader DIR``. Never gates on
anything; the last line printed is a JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import zstandard

from corpusgen.config import BuildConfig
from corpusgen.documents import prepare_documents
from corpusgen.packing import pack_pool
from corpusgen.pairing import TokenizedDocument
from corpusgen.stats import padding_share_bound
from corpusgen.tokenizer import SubwordTokenizer, VocabFile

DATA = Path(__file__).resolve().parents[1] / "corpusgen" / "data"


def whole_sentence_lengths(docs: list[TokenizedDocument], L: int) -> Counter:
    """Row lengths of full-sentences rows closed at sentence ends ([CLS], a [SEP] closing each piece)."""
    lengths: Counter = Counter()
    used = 1
    for doc in docs:
        b = doc.bound_list
        new_piece = True
        for s in range(len(b) - 1):
            cost = b[s + 1] - b[s] + (1 if new_piece else 0)
            if used + cost > L:
                lengths[used] += 1
                used, cost = 1, b[s + 1] - b[s] + 1
            used += cost
            new_piece = False
    lengths[used] += 1
    return lengths


def figures(lengths: Counter, L: int) -> dict:
    rows = sum(lengths.values())
    return {
        "rows": rows,
        "fill": round(sum(k * v for k, v in lengths.items()) / (rows * L), 4),
        "padding_bound_bins_8": padding_share_bound(lengths, 8, L),
        "padding_bound_bins_16": padding_share_bound(lengths, 16, L),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--docs", type=int, default=3000)
    args = ap.parse_args()
    L = args.max_seq_length
    lines = zstandard.ZstdDecompressor().decompress((DATA / "enwiki_sample.jsonl.zst").read_bytes()).splitlines()
    texts = [(i, f"{i:08d}", json.loads(line)["text"]) for i, line in enumerate(lines[: args.docs])]
    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    cfg = BuildConfig(next_sentence="full-sentences", max_seq_length=L)
    docs = sorted((d for _, _, _, d, _ in prepare_documents(texts, cfg, wp, Counter())), key=lambda d: d.key)
    out = {"max_seq_length": L, "documents": len(docs), "tokens": sum(d.n_tokens for d in docs)}
    for layout in ("full-sentences", "doc-sentences"):
        lengths = Counter(
            len(p.tokens_a) + 2 for rows, _ in pack_pool(docs, cfg.replace(next_sentence=layout), 0, wp.sep_id)
            for p in rows.rows
        )  # fmt: skip
        out[layout] = figures(lengths, L)
    out["full-sentences, closed at sentence ends"] = figures(whole_sentence_lengths(docs, L), L)
    for name, f in out.items():
        if isinstance(f, dict):
            print(f"{name:40s} rows {f['rows']:7d}  fill {f['fill']:.4f}  padding at most "
                  f"{f['padding_bound_bins_8']:.4f} (bins of 8), {f['padding_bound_bins_16']:.4f} (bins of 16)")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
