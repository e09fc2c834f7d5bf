"""WordPiece tokenization with Hugging Face ``tokenizers``: vocab.txt or tokenizer.json.

``WordPiece`` wraps a ``tokenizers.Tokenizer`` and adds what the algorithm needs
as arrays indexed by token id: which ids are special, which continue a word
(``##``), and the non-special ids a random replacement is drawn from.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BRACKETED = re.compile(r"^\[[^\[\]\s]+\]$")  # [PAD], [unused17], <…> vocabularies keep theirs too


class VocabError(ValueError):
    """A vocabulary that cannot be used, with the file and the fix."""


@dataclass(frozen=True)
class VocabFile:
    """A vocabulary as bytes, so it travels with the pipeline to remote workers."""

    name: str  # "vocab.txt" or "tokenizer.json"
    data: bytes

    @property
    def kind(self) -> str:
        return "json" if self.name.endswith(".json") else "txt"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @classmethod
    def read(cls, path: str | Path) -> VocabFile:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VocabError(
                f"{path}: cannot read vocabulary ({exc.strerror}); pass --vocab vocab.txt|tokenizer.json or train one with `corpusgen vocab`"
            ) from None
        name = "tokenizer.json" if path.suffix == ".json" else "vocab.txt"
        vf = cls(name, data)
        WordPiece(vf, source=str(path))  # validate now, before any work
        return vf


def _txt_tokens(data: bytes, source: str) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VocabError(
            f"{source}: vocabulary is not UTF-8 text; pass a WordPiece vocab.txt (one token per line)"
        ) from None
    # A byte-order mark is an editor's, not the first token's: "\ufeff[PAD]" would hide [PAD].
    text = text.removeprefix("\ufeff")
    # Split on \n only: some vocabularies hold U+2028 as a token, which splitlines() would cut.
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [t.rstrip("\r") for t in tokens]


class WordPiece:
    """A WordPiece tokenizer and the id tables pairing and masking use."""

    def __init__(self, vocab: VocabFile, do_lower_case: bool | None = None, *, source: str | None = None) -> None:
        from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece as WordPieceModel

        source = source or vocab.name
        if vocab.kind == "txt":
            tokens = _txt_tokens(vocab.data, source)
            if len(tokens) < len(SPECIAL_TOKENS) + 1:
                raise VocabError(
                    f"{source}: only {len(tokens)} tokens; pass a WordPiece vocab.txt (one token per line)"
                )
            if len(set(tokens)) != len(tokens):
                dup = next(t for i, t in enumerate(tokens) if t in tokens[:i])
                raise VocabError(f"{source}: token {dup!r} appears twice; a vocab.txt must list each token once")
            vocab_map = {t: i for i, t in enumerate(tokens)}
            if do_lower_case is None:
                # Google's uncased vocabularies hold (almost) no upper-case word pieces; cased ones thousands.
                upper = sum(1 for t in tokens if not _BRACKETED.match(t) and any(c.isupper() for c in t))
                do_lower_case = upper < 0.01 * len(tokens)
            tok = Tokenizer(WordPieceModel(vocab_map, unk_token="[UNK]", max_input_chars_per_word=100))
            tok.normalizer = normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case
            )
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece(prefix="##")
        else:
            try:
                tok = Tokenizer.from_str(vocab.data.decode("utf-8"))
                spec = json.loads(vocab.data)
            except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
                raise VocabError(
                    f"{source}: not a valid tokenizer.json ({str(exc)[:120]}); save one with tokenizers' Tokenizer.save"
                ) from None
            if (spec.get("model") or {}).get("type") != "WordPiece":
                raise VocabError(
                    f"{source}: model type {(spec.get('model') or {}).get('type')!r}, corpusgen needs a WordPiece tokenizer"
                )
            norm = spec.get("normalizer") or {}
            lowered = bool(norm.get("lowercase")) if norm.get("type") == "BertNormalizer" else None
            if do_lower_case is not None and lowered is not None and do_lower_case != lowered:
                raise VocabError(
                    f"{source}: its normalizer has lowercase={lowered}, the build asked for do_lower_case={do_lower_case}; drop the option or fix the tokenizer"
                )
            do_lower_case = bool(lowered) if lowered is not None else bool(do_lower_case)
            # A saved tokenizer may carry padding/truncation for a model; tokenization here must not.
            tok.no_padding()
            tok.no_truncation()
            vocab_map = tok.get_vocab(with_added_tokens=True)
            tokens = [""] * (max(vocab_map.values()) + 1)
            for t, i in vocab_map.items():
                tokens[i] = t
        missing = [t for t in SPECIAL_TOKENS if t not in vocab_map]
        if missing:
            raise VocabError(
                f"{source}: missing special token(s) {', '.join(missing)}; a BERT vocabulary needs {', '.join(SPECIAL_TOKENS)}"
            )

        self.vocab = vocab
        self.tokenizer = tok
        self.tokens = tokens
        self.vocab_size = len(tokens)
        self.do_lower_case = bool(do_lower_case)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (vocab_map[t] for t in SPECIAL_TOKENS)
        self.is_special = np.array([bool(_BRACKETED.match(t)) or t == "" for t in tokens], dtype=bool)
        self.is_continuation = np.array([t.startswith("##") for t in tokens], dtype=bool)
        self.replacement_ids = np.flatnonzero(~self.is_special).astype(np.int64)
        if len(self.replacement_ids) < 2:
            raise VocabError(f"{source}: fewer than 2 ordinary tokens; nothing to draw random replacements from")
        # rank of each ordinary id inside replacement_ids, to draw "any ordinary token but this one"
        self.replacement_rank = np.full(self.vocab_size, -1, dtype=np.int64)
        self.replacement_rank[self.replacement_ids] = np.arange(len(self.replacement_ids))
        self._encode = getattr(tok, "encode_batch_fast", tok.encode_batch)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of many texts at once: (flat int64 ids, per-text lengths)."""
        if not texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        encodings = self._encode(list(texts), add_special_tokens=False)
        id_lists = [e.ids for e in encodings]
        lengths = np.fromiter((len(x) for x in id_lists), dtype=np.int64, count=len(id_lists))
        flat = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def describe(self) -> dict:
        """The manifest's ``tokenizer`` entry."""
        return {
            "type": "wordpiece",
            "vocab_size": self.vocab_size,
            "do_lower_case": self.do_lower_case,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
            "cls_id": self.cls_id,
            "sep_id": self.sep_id,
            "mask_id": self.mask_id,
        }


def split_long_sentence(length: int, limit: int, is_word_start: np.ndarray) -> list[int]:
    """Cut points (ends) that split a sentence of ``length`` tokens into pieces of at most ``limit``.

    A cut moves back to a word start when one lies within the last quarter of the piece, so
    words are not broken. ``is_word_start[j]`` tells whether token j of the sentence starts a word.
    """
    ends = []
    start = 0
    slack = max(1, limit // 4)
    while length - start > limit:
        cut = start + limit
        starts = np.flatnonzero(is_word_start[cut - slack + 1 : cut + 1])
        if len(starts):
            cut = cut - slack + 1 + int(starts[-1])
        ends.append(cut)
        start = cut
    ends.append(length)
    return ends


def tokenize_documents(
    keys: Sequence[str],
    sentence_lists: Sequence[Sequence[str]],
    wp: WordPiece,
    max_sentence_tokens: int,
    counts,
):
    """Token ids and sentence bounds of many documents, in one tokenizer call.

    Returns a list of (key, ids, bounds) — ids in the shard's token dtype, bounds int64
    offsets of the sentences. Sentences that produce no tokens are dropped (counted);
    sentences longer than ``max_sentence_tokens`` are cut at word starts (counted), since
    no instance could hold them whole and truncation would throw most of them away.
    """
    from corpusgen.shards import token_dtype

    flat_sentences = [s for sents in sentence_lists for s in sents]
    ids, lengths = wp.encode(flat_sentences)
    # A saved tokenizer matches special tokens written in the text; in the data they are
    # ordinary text, so they become [UNK] instead of breaking [CLS] A [SEP] B [SEP].
    structural = np.isin(ids, [wp.cls_id, wp.sep_id, wp.mask_id, wp.pad_id])
    if structural.any():
        counts["special_tokens_in_text"] += int(structural.sum())
        ids[structural] = wp.unk_id
    unk = int((ids == wp.unk_id).sum())
    if unk:
        counts["unk_tokens"] += unk
    ids = ids.astype(token_dtype(wp.vocab_size))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = []
    s = 0
    for key, sents in zip(keys, sentence_lists):
        e = s + len(sents)
        lens = lengths[s:e]
        empty = int((lens == 0).sum())
        if empty:
            counts["sentences_without_tokens"] += empty
        doc_ids = ids[offsets[s] : offsets[e]]
        ends = np.cumsum(lens[lens > 0])
        if len(ends) and (lens > max_sentence_tokens).any():
            ends = _cut_long(doc_ids, ends, max_sentence_tokens, wp, counts)
        out.append((key, doc_ids, np.concatenate(([0], ends)).astype(np.int64)))
        s = e
    return out


def _cut_long(doc_ids: np.ndarray, ends: np.ndarray, limit: int, wp: WordPiece, counts) -> np.ndarray:
    new_ends: list[int] = []
    start = 0
    for end in ends.tolist():
        if end - start > limit:
            counts["long_sentences_cut"] += 1
            word_start = ~wp.is_continuation[doc_ids[start:end]]
            new_ends += [start + c for c in split_long_sentence(end - start, limit, word_start)]
        else:
            new_ends.append(end)
        start = end
    return np.array(new_ends, dtype=np.int64)
