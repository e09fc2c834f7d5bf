"""Cleaned texts → tokenized documents ready for pairing: the steps a build runs per document.

Quality rules (when on), sentence splitting, tokenization, the minimum-sentence rule and the
split/pool assignment, in that order; every drop counted by reason, and with ``write_removed``
collected with its text. The pipeline runs this over a chunk of documents at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from corpusgen import stats
from corpusgen.config import BuildConfig
from corpusgen.pairing import TokenizedDocument, min_sentences
from corpusgen.partition import pool_hash, split_of
from corpusgen.split import split_sentences
from corpusgen.timing import StageTimer
from corpusgen.tokenizer import SubwordTokenizer, tokenize_documents

Removed = list  # of (reason, text): dropped documents, kept only when the build writes them


def drop(counts: Counter, removed: Removed | None, reason: str, text: str | None) -> None:
    counts[reason] += 1
    if removed is not None and text is not None:
        removed.append((reason, text))


def prepare_documents(
    batch: Sequence[tuple[int, str, str]],
    cfg: BuildConfig,
    wp: SubwordTokenizer,
    counts: Counter,
    removed: Removed | None = None,
    timer: StageTimer | None = None,
) -> list[tuple[str, int, int, TokenizedDocument, str | None]]:
    """``(locator, content key, cleaned text)`` → ``(split, pool hash, locator, document, text)``.

    ``text`` is kept only when ``cfg.write_removed`` (a later step may still drop the document).
    """
    timer = timer or StageTimer()
    with timer.stage("split"):
        sentence_lists = [split_sentences(text, cfg.lang, cfg.line_breaks) for _, _, text in batch]
    counts["sentences_read"] += sum(len(s) for s in sentence_lists)
    if cfg.quality is not None:
        from corpusgen.quality import check_document

        kept = []
        for item, sentences in zip(batch, sentence_lists):
            reason = check_document(item[2], sentences, cfg.quality)
            if reason is None:
                kept.append((item, sentences))
            else:
                drop(counts, removed, stats.QUALITY_PREFIX + reason, item[2])
        batch = [item for item, _ in kept]
        sentence_lists = [s for _, s in kept]
    need = min_sentences(cfg)
    out = []
    with timer.stage("tokenize"):
        tokenized = tokenize_documents([key for _, key, _ in batch], sentence_lists, wp, cfg.max_num_tokens, counts)
    for (loc, key, text), (_, ids, bounds, word_starts) in zip(batch, tokenized):
        n_tokens, n_sent = int(bounds[-1]), len(bounds) - 1
        counts["tokens_read"] += n_tokens
        if n_tokens == 0:
            drop(counts, removed, stats.EMPTY_AFTER_TOKENIZATION, text)
            continue
        if n_sent < need:
            drop(counts, removed, stats.SINGLE_SENTENCE, text)
            counts["tokens_in_dropped_documents"] += n_tokens
            continue
        doc = TokenizedDocument(key, ids, bounds, word_starts=word_starts)
        out.append((split_of(key, cfg), pool_hash(key, cfg), loc, doc, text if cfg.write_removed else None))
    return out
