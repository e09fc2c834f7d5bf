"""Train a WordPiece, BPE or Unigram tokenizer with Hugging Face ``tokenizers`` on a corpus.

It learns from exactly the text a build tokenizes: files are read with
``readers.read_documents`` and cleaned with ``clean.clean_document`` under the same
``BuildConfig``, so HTML, mojibake, Unicode form and drops are handled as in ``build``.

Each model keeps its family's conventions, so the result loads where such a tokenizer is expected:

* ``wordpiece``: BERT's (``BertWordPieceTokenizer``: BERT normalizer and pre-tokenizer, ``##``
  pieces, ``[PAD] [UNK] [CLS] [SEP] [MASK]``), as vocab.txt or tokenizer.json;
* ``bpe``: byte-level BPE as RoBERTa/ModernBERT (every byte in the alphabet, so no text is
  unknown; ``<s> <pad> </s> <unk> <mask>``), tokenizer.json only;
* ``unigram``: a SentencePiece-style Unigram model with a Metaspace pre-tokenizer (``▁``), the
  same special tokens, tokenizer.json only.

BPE and Unigram get a post-processor that lays out ``<s> A </s> B </s>`` (type id 1 for B), which
is the layout a build writes (RoBERTa's own doubles the ``</s>`` between the segments), so the
exported model's tokenizer encodes pairs as the model saw them in pretraining.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from corpusgen import readers, stats
from corpusgen.clean import clean_document, content_key
from corpusgen.config import BuildConfig
from corpusgen.tokenizer import SPECIAL_TOKENS

MODELS = ("wordpiece", "bpe", "unigram")
# BPE/Unigram: RoBERTa's order (<s> 0, <pad> 1, </s> 2, <unk> 3), then <mask>
SENTENCE_PIECE_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def iter_documents(
    files: list[str], cfg: BuildConfig, counts: Counter, opener: readers.Opener = readers.open_local
) -> Iterator[str]:
    """Cleaned documents of ``files``, streamed, each once; drops counted by reason in ``counts``.

    Exact duplicates (``content_key``) are dropped as a build drops them (unless ``cfg.dedup`` is
    off), so a text repeated across the corpus weighs in the vocabulary as it does in the shards;
    the keys seen are kept (16 bytes a document). ``opener`` opens a path's raw bytes: local
    files by default; the CLI passes Beam's filesystems for gs://, s3://, hdfs:// paths.
    """
    seen: set[bytes] = set()
    for path in files:
        for doc in readers.read_documents(path, cfg, counts, opener):
            text, reason = clean_document(doc, cfg, counts, source=path)
            if reason is None and cfg.dedup:
                key = bytes.fromhex(content_key(text))
                if key in seen:
                    reason = stats.DUPLICATE_DOCUMENT
                seen.add(key)
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
    lower_case: bool | None = None,
    model: str = "wordpiece",
) -> dict:
    """Train and save ``output`` (vocab.txt, or tokenizer.json when it ends in .json).

    ``lower_case`` None: lower-case for WordPiece (BERT uncased), keep case for BPE and Unigram.
    """
    if model not in MODELS:
        raise ValueError(f"--model {model!r}: choose one of {', '.join(MODELS)}")
    if model != "wordpiece" and Path(output).suffix != ".json":
        raise ValueError(f"{output}: a {model} tokenizer is saved as tokenizer.json only; pass -o tokenizer.json")
    if vocab_size < len(SPECIAL_TOKENS) + 10:
        raise ValueError(f"--vocab-size {vocab_size} is too small; use at least {len(SPECIAL_TOKENS) + 10}")
    if model == "bpe" and vocab_size < 256 + len(SENTENCE_PIECE_SPECIALS):
        raise ValueError(f"--vocab-size {vocab_size} is too small for byte-level BPE; use at least 261 (256 bytes + 5)")
    lower_case = (model == "wordpiece") if lower_case is None else lower_case
    counts: Counter = Counter()
    n_docs = 0
    alphabet: set[str] = set()  # a Unigram vocabulary holds every character it saw

    def docs() -> Iterator[str]:
        nonlocal n_docs
        for doc in iter_documents(files, cfg, counts, opener):
            if doc:
                n_docs += 1
                if model == "unigram":
                    alphabet.update(doc.lower() if lower_case else doc)
                yield doc

    if model == "wordpiece":
        from tokenizers import BertWordPieceTokenizer

        tok = BertWordPieceTokenizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case
        )
        tok.train_from_iterator(
            docs(),
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            limit_alphabet=limit_alphabet,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        from tokenizers import processors

        # BertWordPieceTokenizer sets its template only when built on a vocabulary; a trained one has
        # none, and a tokenizer.json without it adds no [CLS]/[SEP] where it is used as it is
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
        )
    else:
        try:
            tok = _train_sentence_piece_style(docs(), model, vocab_size, min_frequency, limit_alphabet, lower_case)
        except Exception as exc:  # tokenizers raises a bare Exception
            if "not large enough to contain all chars" not in str(exc):
                raise
            need = len(alphabet - set(" \t\n")) + 1 + len(SENTENCE_PIECE_SPECIALS)  # characters, "▁", specials
            raise ValueError(
                f"{files[0]}{' …' if len(files) > 1 else ''}: --vocab-size {vocab_size} cannot hold the input's "
                f"{len(alphabet)} distinct characters (a Unigram vocabulary keeps every one); use at least {need}"
            ) from None
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
    warnings = []
    if tok.get_vocab_size() > vocab_size:
        kept = "is kept; raise --vocab-size" if model == "unigram" else (
            f"(up to --limit-alphabet {limit_alphabet}) is kept; lower --limit-alphabet or raise --vocab-size"
        )  # fmt: skip
        warnings.append(
            f"{tok.get_vocab_size()} tokens, more than --vocab-size {vocab_size}: every character of the input {kept}"
        )
    return {"vocab_size": tok.get_vocab_size(), "documents": n_docs, "drops": drops, "counts": dict(counts),
            "warnings": warnings}  # fmt: skip


def _train_sentence_piece_style(docs: Iterator[str], model: str, vocab_size: int, min_frequency: int,
                                limit_alphabet: int, lower_case: bool):  # fmt: skip
    """A byte-level BPE or a Metaspace Unigram tokenizer with ``<s> A </s> B </s>`` templates."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    bos, pad, eos, unk, mask = SENTENCE_PIECE_SPECIALS
    if model == "bpe":
        tok = Tokenizer(models.BPE(unk_token=unk))
        # a prefix space: a sentence's first word is tokenized as inside a text ("Ġword"), as the
        # build tokenizes each sentence on its own
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SENTENCE_PIECE_SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            limit_alphabet=max(limit_alphabet, 256),
            show_progress=False,
        )
        trim = [processors.ByteLevel(trim_offsets=True)]
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=list(SENTENCE_PIECE_SPECIALS), unk_token=unk, show_progress=False
        )
        trim = []
    if lower_case:
        tok.normalizer = normalizers.Lowercase()
    tok.train_from_iterator(docs, trainer=trainer)
    template = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))],
    )
    tok.post_processor = processors.Sequence([*trim, template]) if trim else template
    return tok
