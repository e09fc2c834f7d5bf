"""What word starts cost in tokenization: ids alone vs ids + word starts, per tokenizer kind.

    python bench/bench_word_ids.py [--vocab PATH ...]

Tokenizes the sentences of the bundled Wikipedia sample (split as a build splits them) the way a
build does (``SubwordTokenizer.encode_words``): WordPiece takes the fast path (``encode_batch_fast``,
word starts from the ``##`` table later, for free); BPE and Unigram need the full ``encode_batch``
for ``word_ids``. Beside each, the fast ids-only call on the same tokenizer is the floor. Best of
three, all cores (the tokenizer's Rust threads). Figures only; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpusgen.config import BuildConfig  # noqa: E402
from corpusgen.readers import open_local, read_documents  # noqa: E402
from corpusgen.split import split_sentences  # noqa: E402
from corpusgen.tokenizer import SubwordTokenizer, VocabFile  # noqa: E402

DATA = ROOT / "corpusgen" / "data"
FIXTURES = ROOT / "tests" / "fixtures" / "tokenizers"
DEFAULT_VOCABS = [DATA / "bert-base-uncased-vocab.txt", FIXTURES / "bpe-2000.json", FIXTURES / "unigram-2000.json"]


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", action="append", help="vocab.txt or tokenizer.json (repeatable) [the bundled three]")
    args = ap.parse_args()
    cfg = BuildConfig()
    docs = list(read_documents(str(DATA / "enwiki_sample.jsonl.zst"), cfg, Counter(), open_local))
    sentences = [s for d in docs for s in split_sentences(d, cfg.lang, cfg.line_breaks)]
    results = []
    for path in args.vocab or DEFAULT_VOCABS:
        tok = SubwordTokenizer(VocabFile.read(path))
        tok.encode_words(sentences[:500])  # warm up
        ids_only = best(lambda tok=tok: tok.encode(sentences))
        with_starts = best(lambda tok=tok: tok.encode_words(sentences))
        n_tokens = len(tok.encode(sentences)[0])
        results.append(
            {"vocab": Path(path).name, "type": tok.kind, "tokens": n_tokens, "ids_only_s": round(ids_only, 3),
             "with_word_starts_s": round(with_starts, 3), "ratio": round(with_starts / ids_only, 2)}
        )  # fmt: skip
        r = results[-1]
        print(
            f"{r['vocab']} ({r['type']}): {n_tokens / 1e6:.2f} M tokens; ids only {ids_only:.2f} s "
            f"({n_tokens / ids_only / 1e6:.2f} M tokens/s), as the build tokenizes {with_starts:.2f} s "
            f"({n_tokens / with_starts / 1e6:.2f} M tokens/s), x{r['ratio']}"
        )
    print(json.dumps({"sentences": len(sentences), "results": results}))


if __name__ == "__main__":
    main()
