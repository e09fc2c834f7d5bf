"""Train a WordPiece vocabulary with Hugging Face ``tokenizers`` on a corpus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from corpusgen import readers
from corpusgen.clean import clean_text
from corpusgen.config import BuildConfig
from corpusgen.tokenizer import SPECIAL_TOKENS


def iter_documents(files: list[str], cfg: BuildConfig, counts: Counter) -> Iterator[str]:
    """Cleaned documents of local or Beam-filesystem files, streamed."""
    from apache_beam.io.filesystems import FileSystems

    for path in files:
        fmt = readers.detect_format(path, cfg)
        if fmt in ("parquet", "arrow"):
            docs = readers.read_table_documents(path, fmt, cfg, counts)
            yield from (clean_text(d) for d in docs)
            continue
        parse = readers.read_jsonl_documents if fmt == "jsonl" else readers.read_text_documents
        with FileSystems.open(path) as stream:
            yield from (clean_text(d) for d in parse(stream, cfg, counts))


def train_vocab(
    files: list[str],
    output: str,
    cfg: BuildConfig,
    *,
    vocab_size: int = 30522,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    lower_case: bool = True,
) -> dict:
    """Train and save ``output`` (vocab.txt, or tokenizer.json when it ends in .json)."""
    from tokenizers import BertWordPieceTokenizer

    if vocab_size < len(SPECIAL_TOKENS) + 10:
        raise ValueError(f"--vocab-size {vocab_size} is too small; use at least {len(SPECIAL_TOKENS) + 10}")
    counts: Counter = Counter()
    n_docs = 0

    def docs() -> Iterator[str]:
        nonlocal n_docs
        for doc in iter_documents(files, cfg, counts):
            if doc:
                n_docs += 1
                yield doc

    tok = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case)
    tok.train_from_iterator(
        docs(),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        limit_alphabet=limit_alphabet,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    if n_docs == 0:
        raise ValueError(f"{files[0]}: no documents read (drops: {dict(counts) or 'none'}); check the input format")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        tok.save(str(out))
    else:
        vocab = tok.get_vocab()
        tokens = sorted(vocab, key=vocab.__getitem__)
        out.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return {"vocab_size": tok.get_vocab_size(), "documents": n_docs, "drops": dict(counts)}
