"""Hugging Face tokenizers for the build: WordPiece (vocab.txt or tokenizer.json), BPE and Unigram (tokenizer.json).

``SubwordTokenizer`` wraps a ``tokenizers.Tokenizer`` and adds what the algorithm needs as arrays
indexed by token id: which ids are special, which continue a word (WordPiece's ``##``), and the
non-special ids a random replacement is drawn from. The special tokens are found by their role in
the tokenizer (its post-processor's template for cls/sep, the model's unk token, its padding, its
added special tokens), never assumed; a vocab.txt has only its tokens, so there they are BERT's.

Word starts: a WordPiece token starts a word unless it is a ``##`` piece, exactly and for free, so
WordPiece documents carry none (``None``: derive them from ``is_continuation``). BPE and Unigram
pieces say nothing reliable about words (a byte-level BPE's first word of a sentence has no ``Ġ``,
punctuation is a word of its own), so their word starts come from the tokenizer's ``word_ids``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpusgen.unicode_ranges import UNSPACED

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # a vocab.txt's, by BERT's names
ROLES = ("pad", "unk", "cls", "sep", "mask")  # SPECIAL_TOKENS' roles, in the same order
MODEL_TYPES = {"WordPiece": "wordpiece", "BPE": "bpe", "Unigram": "unigram"}  # tokenizer.json model type -> kind
_BRACKETED = re.compile(r"^\[[^\[\]\s]+\]$")  # [PAD], [unused17], <…> vocabularies keep theirs too
# A special token's name without its brackets, as tokenizers write them: [MASK], <mask>, <|padding|>, </s>;
# in order of preference (ModernBERT has both <|padding|> and its pad token [PAD]).
_ROLE_NAMES = {"pad": ("pad", "padding"), "unk": ("unk", "unknown"), "cls": ("cls", "s"), "sep": ("sep", "/s"),
               "mask": ("mask",)}  # fmt: skip


# Python's str.split() and Arrow split at these, BERT's normalizer (clean_text) deletes them as controls first.
_SPLITS_ONLY_IN_PYTHON = "[\x0b\x0c\x1c-\x1f\x85]"
PIECE_MEMO_ENTRIES = 1 << 19  # pieces whose ids a tokenizer keeps: ~150 MB at most (280 B a piece, measured)
PIECES_PER_TEXT = 256  # new pieces tokenized together, joined by spaces
MAX_ID_GAPS = 1024  # unused ids a tokenizer.json may leave below its top id (they never occur)
# Where no space separates two sentences: a stop or first letter of a script written without spaces
_UNSPACED_EDGE = re.compile(f"[{UNSPACED}\u3000-\u303f\uff00-\uffef]")


def _pieces_tokenize_alone(spec: dict) -> bool:
    """Whether a tokenizer.json tokenizes each whitespace-separated piece of a text as it would in the text.

    True for BERT's own pipeline: a BertNormalizer that cleans controls (or none that could join
    pieces) and the BertPreTokenizer, with no added token that holds whitespace.
    """
    norm, pre = spec.get("normalizer"), spec.get("pre_tokenizer") or {}
    if not norm or norm.get("type") != "BertNormalizer" or not norm.get("clean_text", True):
        return False
    if pre.get("type") != "BertPreTokenizer":
        return False
    return all(len(t.get("content", "").split()) == 1 for t in spec.get("added_tokens") or [])


class PieceMemo:
    """Token ids of text pieces, each piece tokenized once: piece → its row in a flat table of ids.

    Bounded: past ``capacity`` pieces the memo starts over (a miss only costs tokenizing again).
    """

    def __init__(self, tokenize, capacity: int = PIECE_MEMO_ENTRIES) -> None:
        self.tokenize, self.capacity = tokenize, capacity  # tokenize(pieces) -> (flat ids, tokens per piece)
        self.clear()

    def clear(self) -> None:
        self.row: dict[str, int] = {}
        self.ids = np.zeros(0, dtype=np.int64)
        self.start = np.zeros(0, dtype=np.int64)
        self.length = np.zeros(0, dtype=np.int64)

    def rows(self, pieces: list[str]) -> np.ndarray:
        """Rows of distinct ``pieces`` in the table, tokenizing those not in it yet.

        Valid until the next call (which may start the memo over).
        """
        rows = np.fromiter(map(self.row.get, pieces, itertools.repeat(-1)), dtype=np.int64, count=len(pieces))
        missing = rows < 0
        if missing.any():
            new = list(itertools.compress(pieces, missing.tolist()))
            if len(self.row) + len(new) > self.capacity:
                self.clear()
                new, missing = list(pieces), np.ones(len(pieces), dtype=bool)
            flat, lengths = self.tokenize(new)
            first = len(self.length)
            self.row.update(zip(new, range(first, first + len(new))))
            self.start = np.concatenate((self.start, len(self.ids) + np.cumsum(lengths) - lengths))
            self.length = np.concatenate((self.length, lengths))
            self.ids = np.concatenate((self.ids, flat))
            rows[missing] = np.arange(first, first + len(new))
        return rows

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flat int64 ids of the pieces at ``rows``, in order; tokens per piece)."""
        lengths = self.length[rows]
        firsts = np.cumsum(lengths) - lengths
        # each output token's index in self.ids: its piece's start + its place in the piece
        index = np.repeat(self.start[rows] - firsts, lengths) + np.arange(int(lengths.sum()))
        return self.ids[index], lengths


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
        shared_tokenizer(vf, source=str(path))  # validate now, before any work
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


def _role_name(token: str) -> str:
    return token.strip("<>[]|").lower()


def _template_cls_sep(proc: dict | None) -> tuple[str | None, str | None]:
    """cls and sep of a post-processor: the special tokens around ``$A`` in its single template."""
    if not proc:
        return None, None
    kind = proc.get("type")
    if kind in ("BertProcessing", "RobertaProcessing"):
        return (proc.get("cls") or [None])[0], (proc.get("sep") or [None])[0]
    if kind == "Sequence":
        for sub in proc.get("processors") or []:
            cls, sep = _template_cls_sep(sub)
            if cls or sep:
                return cls, sep
        return None, None
    if kind != "TemplateProcessing":
        return None, None
    named = proc.get("special_tokens") or {}

    def token(item: dict) -> str:
        key = item["SpecialToken"]["id"]
        return ((named.get(key) or {}).get("tokens") or [key])[0]

    single = proc.get("single") or []
    seq = next((i for i, item in enumerate(single) if "Sequence" in item), None)
    if seq is None:
        return None, None
    before = [token(it) for it in single[:seq] if "SpecialToken" in it]
    after = [token(it) for it in single[seq + 1 :] if "SpecialToken" in it]
    return (before[-1] if before else None), (after[0] if after else None)


def _lowercases(norm: dict | None) -> bool:
    """Whether a tokenizer.json normalizer lower-cases its input."""
    if not norm:
        return False
    if norm.get("type") == "BertNormalizer":
        return bool(norm.get("lowercase"))
    if norm.get("type") == "Lowercase":
        return True
    return any(_lowercases(n) for n in norm.get("normalizers") or [])


def find_special_tokens(spec: dict, vocab_map: dict[str, int], kind: str, source: str) -> dict[str, str]:
    """The token of each role in ``ROLES`` of a tokenizer.json, from what the tokenizer itself says.

    cls/sep: the tokens around the first sequence of its post-processor (TemplateProcessing,
    BertProcessing, RobertaProcessing, or one inside a Sequence); unk: the model's unk token; pad:
    its padding's pad token; then, for any role still open, the added special token of that name
    (``[MASK]``, ``<mask>``, ``<|padding|>``…). A WordPiece tokenizer may also name them only in its
    vocabulary, with BERT's names. A role that cannot be found is a ``VocabError``.
    """
    found: dict[str, str | None] = dict(zip(("cls", "sep"), _template_cls_sep(spec.get("post_processor"))))
    model = spec.get("model") or {}
    found["unk"] = model.get("unk_token")
    if isinstance(model.get("unk_id"), int):  # Unigram names its unk token by id
        found["unk"] = next((t for t, i in vocab_map.items() if i == model["unk_id"]), None)
    found["pad"] = (spec.get("padding") or {}).get("pad_token")
    specials = [t["content"] for t in spec.get("added_tokens") or [] if t.get("special")]
    roles: dict[str, str] = {}
    for role, default in zip(ROLES, SPECIAL_TOKENS):
        token = found.get(role)
        if token not in vocab_map:
            named = (t for name in _ROLE_NAMES[role] for t in specials if _role_name(t) == name)
            token = next(named, None)
        if token is None and kind == "wordpiece" and default in vocab_map:
            token = default
        if token is None:
            if role in ("cls", "sep"):
                template = "[CLS] $A [SEP]" if kind == "wordpiece" else "<s> $A </s>"
                fix = f"give it a post-processor (e.g. TemplateProcessing(single='{template}'))"
            else:
                fix = f"add one as a special token (e.g. {default if kind == 'wordpiece' else f'<{role}>'})"
            raise VocabError(
                f"{source}: no {role} token found (post-processor, model, padding, added special tokens); "
                f"{fix} and save the tokenizer again"
            )
        roles[role] = token
    ids = [vocab_map[roles[r]] for r in ROLES]
    if len(set(ids)) < len(ids):
        shared = ", ".join(f"{r}={roles[r]}" for r in ROLES)
        raise VocabError(f"{source}: special tokens must be distinct, found {shared}; give each role its own token")
    return roles


class SubwordTokenizer:
    """A WordPiece, BPE or Unigram tokenizer and the id tables pairing and masking use."""

    def __init__(self, vocab: VocabFile, do_lower_case: bool | None = None, *, source: str | None = None) -> None:
        from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece as WordPieceModel

        source = source or vocab.name
        special_added: list[int] = []
        prefix = "##"
        if vocab.kind == "txt":
            kind = "wordpiece"
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
            missing = [t for t in SPECIAL_TOKENS if t not in vocab_map]
            if missing:
                raise VocabError(
                    f"{source}: missing special token(s) {', '.join(missing)}; a BERT vocabulary needs {', '.join(SPECIAL_TOKENS)}"
                )
            roles = dict(zip(ROLES, SPECIAL_TOKENS))
        else:
            try:
                tok = Tokenizer.from_str(vocab.data.decode("utf-8"))
                spec = json.loads(vocab.data)
            except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
                raise VocabError(
                    f"{source}: not a valid tokenizer.json ({str(exc)[:120]}); save one with tokenizers' Tokenizer.save"
                ) from None
            model = spec.get("model") or {}
            kind = MODEL_TYPES.get(model.get("type"))
            if kind is None:
                raise VocabError(
                    f"{source}: model type {model.get('type')!r}, corpusgen needs a WordPiece, BPE or Unigram tokenizer"
                )
            # The normalizer is the tokenizer's own: do_lower_case only records what it does.
            lowered = _lowercases(spec.get("normalizer"))
            if do_lower_case is not None and do_lower_case != lowered:
                raise VocabError(
                    f"{source}: its normalizer has lowercase={lowered}, the build asked for do_lower_case={do_lower_case}; drop the option or fix the tokenizer"
                )
            do_lower_case = lowered
            # A saved tokenizer may carry padding/truncation for a model; tokenization here must not.
            tok.no_padding()
            tok.no_truncation()
            vocab_map = tok.get_vocab(with_added_tokens=True)
            if len(set(vocab_map.values())) < len(vocab_map):  # an added token given a model token's id
                seen: dict[int, str] = {}
                for t, i in sorted(vocab_map.items(), key=lambda kv: (kv[1], kv[0])):  # a fixed order
                    if i in seen:
                        raise VocabError(
                            f"{source}: tokens {seen[i]!r} and {t!r} share id {i}; each token needs an id of its "
                            "own (add the token to the model's vocabulary, or save the tokenizer again)"
                        )
                    seen[i] = t
            top = max(vocab_map.values(), default=-1)
            if top + 1 > len(vocab_map) + MAX_ID_GAPS:  # every table here has one entry per id up to the top
                raise VocabError(
                    f"{source}: ids run up to {top} for {len(vocab_map)} tokens; a vocabulary's ids number its "
                    f"tokens 0..{len(vocab_map) - 1} (give each token its place, or save the tokenizer again)"
                )
            tokens = [""] * (top + 1)
            for t, i in vocab_map.items():
                tokens[i] = t
            roles = find_special_tokens(spec, vocab_map, kind, source)
            special_added = [vocab_map[t["content"]] for t in spec.get("added_tokens") or [] if t.get("special")]
            if kind == "wordpiece":
                prefix = model.get("continuing_subword_prefix") or "##"

        self.vocab = vocab
        self.tokenizer = tok
        self.kind = kind
        self.tokens = tokens
        self.vocab_size = len(tokens)
        self.do_lower_case = bool(do_lower_case)
        self.special_tokens = roles  # role -> token string
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (vocab_map[roles[r]] for r in ROLES)
        if kind == "wordpiece":
            self.is_special = np.array([bool(_BRACKETED.match(t)) or t == "" for t in tokens], dtype=bool)
            self.is_continuation = np.array([t.startswith(prefix) for t in tokens], dtype=bool)
        else:  # a BPE/Unigram vocabulary's pieces may look like anything, "[1]" included
            self.is_special = np.array([t == "" for t in tokens], dtype=bool)
            self.is_continuation = np.zeros(len(tokens), dtype=bool)  # word starts come from word_ids
        self.is_special[[self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id, *special_added]] = True
        from corpusgen.masking import VocabTables

        self.tables = VocabTables(self.cls_id, self.sep_id, self.mask_id, self.is_special, self.is_continuation)
        if len(self.tables.replacement_ids) < 2:
            raise VocabError(f"{source}: fewer than 2 ordinary tokens; nothing to draw random replacements from")
        self._encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        # A tokenizer that reads the space before a word (byte-level BPE without a prefix space,
        # RoBERTa's: "ĠThe" after a space, "The" at a text's start) must see the space that came
        # before a sentence in its text, or every sentence's first word is split as a text's first.
        probes = tok.encode_batch(["The", " The", "word", " word"], add_special_tokens=False)
        self.space_before_sentences = kind != "wordpiece" and (
            probes[0].ids != probes[1].ids or probes[2].ids != probes[3].ids
        )
        # Pieces between whitespace tokenize on their own exactly as inside their text for BERT's
        # normalizer and pre-tokenizer (both work per character or per whitespace-free word), so
        # their ids are memoised: natural text repeats its words, and a dict lookup is ~50x
        # cheaper than tokenizing the word again.
        self._piece_ids: PieceMemo | None = None
        if kind == "wordpiece" and (vocab.kind == "txt" or _pieces_tokenize_alone(spec)):
            self._piece_ids = PieceMemo(self._tokenize_pieces)

    @property
    def replacement_ids(self) -> np.ndarray:
        return self.tables.replacement_ids

    @property
    def replacement_rank(self) -> np.ndarray:
        return self.tables.replacement_rank

    @property
    def word_starts_from_tokenizer(self) -> bool:
        """Whether documents carry word starts from ``word_ids`` (BPE, Unigram) or derive them from ``##``."""
        return self.kind != "wordpiece"

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of many texts at once: (flat int64 ids, per-text lengths)."""
        if not texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if self._piece_ids is not None:
            return self._encode_by_piece(texts)
        encodings = self._encode(list(texts), add_special_tokens=False)
        id_lists = [e.ids for e in encodings]
        lengths = np.fromiter((len(x) for x in id_lists), dtype=np.int64, count=len(id_lists))
        flat = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def _tokenize_pieces(self, pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids and tokens per piece of whitespace-free ``pieces``, tokenized joined by spaces.

        Joined, because the tokenizer's cost per text outweighs a short piece's; each token is
        then its piece's by the character offset where it starts.
        """
        texts = [" ".join(pieces[i : i + PIECES_PER_TEXT]) for i in range(0, len(pieces), PIECES_PER_TEXT)]
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int64)
        piece_of = []
        for text_start, e in zip(range(0, len(pieces), PIECES_PER_TEXT), encodings):
            chunk = pieces[text_start : text_start + PIECES_PER_TEXT]
            widths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)) + 1  # a piece and its space
            starts = np.concatenate(([0], np.cumsum(widths)[:-1]))  # each piece's first character
            first_char = np.fromiter((o[0] for o in e.offsets), dtype=np.int64, count=len(e.ids))
            piece_of.append(text_start + np.searchsorted(starts, first_char, side="right") - 1)
        piece_of = np.concatenate(piece_of) if piece_of else np.zeros(0, dtype=np.int64)
        return ids, np.bincount(piece_of, minlength=len(pieces)).astype(np.int64)

    def _encode_by_piece(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``encode`` through the memo of whitespace-separated pieces: the same ids, the tokenizer run once a piece.

        Arrow splits the texts and finds their distinct pieces (in C++; its whitespace is Python's),
        so Python touches each distinct piece of a call once, not every word.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(texts, type=pa.large_string())
        if pc.any(pc.match_substring_regex(arr, _SPLITS_ONLY_IN_PYTHON)).as_py():
            arr = pc.replace_substring_regex(arr, _SPLITS_ONLY_IN_PYTHON, "")
        lists = pc.utf8_split_whitespace(arr)
        pieces = lists.flatten().dictionary_encode()
        memo = self._piece_ids
        rows = memo.rows(pieces.dictionary.to_pylist())[pieces.indices.to_numpy()]
        ids, piece_lengths = memo.gather(rows)
        ends = np.asarray(lists.offsets)[1:]  # pieces before each text's end
        token_ends = np.concatenate(([0], np.cumsum(piece_lengths)))[ends]
        return ids, np.diff(token_ends, prepend=0)

    def encode_words(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``encode`` plus, for BPE/Unigram, whether each token starts a word (flat bool; None for WordPiece).

        A token starts a word where its word id differs from the previous token's, and every text's
        first token does. ``word_ids`` needs the full ``encode_batch`` (the fast one tracks no words).
        """
        if not self.word_starts_from_tokenizer:
            return (*self.encode(texts), None)
        if not texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        n = int(lengths.sum())
        flat = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=n)
        words = [e.word_ids for e in encodings]
        try:
            word = np.fromiter(itertools.chain.from_iterable(words), dtype=np.int64, count=n)
        except TypeError:  # a token of no word (None): a word of its own
            word = np.fromiter((-1 if w is None else w for w in itertools.chain.from_iterable(words)), np.int64, n)
        starts = np.ones(n, dtype=bool)
        starts[1:] = (word[1:] != word[:-1]) | (word[1:] < 0)
        starts[np.cumsum(lengths)[:-1][lengths[1:] > 0]] = True  # each text's first token
        return flat, lengths, starts

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def describe(self) -> dict[str, Any]:
        """The manifest's ``tokenizer`` entry: ids and strings of the special tokens by role."""
        return {
            "type": self.kind,
            "vocab_size": self.vocab_size,
            "do_lower_case": self.do_lower_case,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
            "cls_id": self.cls_id,
            "sep_id": self.sep_id,
            "mask_id": self.mask_id,
            **{f"{role}_token": self.special_tokens[role] for role in ROLES},
        }

    def entry_problems(self, entry: dict[str, Any]) -> list[str]:
        """Where a manifest's ``tokenizer`` entry disagrees with ``describe()`` of this vocabulary.

        The entry is what readers take the special ids from (padding, [MASK], ...); what it gives must
        be what the file itself gives, or a trainer would pad with a word.
        """
        return [
            f"tokenizer.{key} is {entry[key]!r}, the vocabulary {self.vocab.name} gives {value!r}"
            for key, value in self.describe().items()
            if key in entry and entry[key] != value
        ]


_SHARED = threading.local()
_SHARED_KEPT = 2  # vocabularies whose tokenizer a thread keeps


def shared_tokenizer(
    vocab: VocabFile, do_lower_case: bool | None = None, *, source: str | None = None
) -> SubwordTokenizer:
    """This thread's ``SubwordTokenizer`` of ``vocab``, built once: building one costs ~0.1 s for
    BERT's vocab.txt (more for a large tokenizer.json), and one build process asks for it when the
    vocabulary is checked, when the graph is built and in every tokenizing step. Per thread, as
    its memo of pieces is not shared between threads; the last ``_SHARED_KEPT`` vocabularies kept."""
    kept: OrderedDict = _SHARED.__dict__.setdefault("tokenizers", OrderedDict())
    key = (vocab.name, vocab.sha256)
    by_case = kept.pop(key, {})  # do_lower_case asked for (None: the vocabulary's own) -> tokenizer
    kept[key] = by_case
    while len(kept) > _SHARED_KEPT:
        kept.popitem(last=False)
    wp = by_case.get(do_lower_case)
    if wp is None:  # None resolves to a case (a vocab.txt's guess, a tokenizer.json's own): kept under both
        built = SubwordTokenizer(vocab, do_lower_case, source=source)
        wp = by_case[do_lower_case] = by_case.setdefault(built.do_lower_case, built)
    return wp


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
    wp: SubwordTokenizer,
    max_sentence_tokens: int,
    counts,
):
    """Token ids and sentence bounds of many documents, in one tokenizer call.

    Returns a list of (key, ids, bounds, word_starts) — ids in the shard's token dtype, bounds
    int64 offsets of the sentences, word_starts a bool per token (None for WordPiece, whose
    ``##`` table tells). Sentences that produce no tokens are dropped (counted); sentences
    longer than ``max_sentence_tokens`` are cut at word starts (counted), since no instance
    could hold them whole and truncation would throw most of them away.
    """
    from corpusgen.shards import token_dtype

    if wp.space_before_sentences:  # a document's later sentences followed a space in its text
        flat_sentences = [
            " " + s if i and not (_UNSPACED_EDGE.match(s) or _UNSPACED_EDGE.match(sents[i - 1][-1:])) else s
            for sents in sentence_lists
            for i, s in enumerate(sents)
        ]
    else:
        flat_sentences = [s for sents in sentence_lists for s in sents]
    ids, lengths, starts = wp.encode_words(flat_sentences)
    # A saved tokenizer matches special tokens written in the text ([SEP], <mask>, an added
    # <|endoftext|>); in the data they are ordinary text, so they become [UNK] instead of breaking
    # [CLS] A [SEP] B [SEP] or sitting, never masked, inside a sentence.
    structural = wp.is_special[ids] & (ids != wp.unk_id)
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
        doc_starts = starts[offsets[s] : offsets[e]] if starts is not None else None
        ends = np.cumsum(lens[lens > 0])
        if len(ends) and (lens > max_sentence_tokens).any():
            word_start = doc_starts if doc_starts is not None else ~wp.is_continuation[doc_ids]
            ends = _cut_long(word_start, ends, max_sentence_tokens, counts)
        out.append((key, doc_ids, np.concatenate(([0], ends)).astype(np.int64), doc_starts))
        s = e
    return out


def _cut_long(word_start: np.ndarray, ends: np.ndarray, limit: int, counts) -> np.ndarray:
    new_ends: list[int] = []
    start = 0
    for end in ends.tolist():
        if end - start > limit:
            counts["long_sentences_cut"] += 1
            new_ends += [start + c for c in split_long_sentence(end - start, limit, word_start[start:end])]
        else:
            new_ends.append(end)
        start = end
    return np.array(new_ends, dtype=np.int64)
