"""Train a WordPiece vocabulary with Hugging Face ``tokenizers`` on a corpus.

It learns from exactly the text a build tokenizes: files are read with
``readers.read_documents`` and cleaned with ``clean.clean_document`` under the same
``BuildConfig``, so HTML, mojibake, Unicode form and drops are handled as in ``build``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from corpusgen import readers, stats
from corpusgen.clean import clean_document
from corpusgen.config import BuildConfig
from corpusgen.tokenizer import SPECIAL_TOKENS


def iter_documents(
    files: list[str], cfg: BuildConfig, counts: Counter, opener: readers.Opener = readers.open_local
) -> Iterator[str]:
    """Cleaned documents of ``files``, streamed; drops counted by reason in ``counts``.

    ``opener`` opens a path's raw bytes: local files by default; the CLI passes Beam's
    filesystems for gs://, s3://, hdfs:// paths.
    """
    for path in files:
        for doc in readers.read_documents(path, cfg, counts, opener):
            text, reason = clean_document(doc, cfg, counts, source=path)
            if reason is None:
                yield text
            else:
                counts[reason] += 1


def train_vocab(
    files: list[str],
    output: str,
    cfg: BuildConfig,
    *,
    opener: readers.Opener = readers.open_local,
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
        for doc in iter_documents(files, cfg, counts, opener):
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
    drops = {reason: counts[reason] for reason in stats.DROP_REASONS if counts[reason]}
    if n_docs == 0:
        raise ValueError(f"{files[0]}: no documents read (drops: {drops or 'none'}); check the input format")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        tok.save(str(out))
    else:
        vocab = tok.get_vocab()
        tokens = sorted(vocab, key=vocab.__getitem__)
        out.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return {"vocab_size": tok.get_vocab_size(), "documents": n_docs, "drops": drops, "counts": dict(counts)}
