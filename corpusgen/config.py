"""The build configuration: one typed, validated dataclass.

Parameter names follow google-research/bert's ``create_pretraining_data.py`` so a
reader can map them one to one. A bad value or combination raises ``ValueError``
when the config is made, before any work starts. The whole config is written into
the manifest, so a build can be repeated from its output alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusgen.neardup import NearDupConfig
from corpusgen.quality import QualityConfig
from corpusgen.readers import INPUT_FORMATS
from corpusgen.split import check_language

HTML_MODES = ("auto", "always", "never")
NEXT_SENTENCE_MODES = ("nsp", "sop", "none", "full-sentences", "doc-sentences")
PACKED_MODES = ("full-sentences", "doc-sentences")
"""Layouts that pack consecutive text into rows for MLM-only training (RoBERTa's names; see ``corpusgen.packing``)."""
MAX_SEQ_LENGTH = 8192
"""The longest rows a build makes (long-context encoders train at up to 8,192 tokens)."""
UNICODE_FORMS = ("NFC", "NFKC", "none")
LINE_BREAK_MODES = ("auto", "sentence", "space")
BERT_MAX_POSITIONS = 512
"""Position embeddings of the standard BERT models (google-research/bert, Hugging Face bert-* checkpoints)."""


@dataclass(frozen=True)
class BuildConfig:
    # --- input -------------------------------------------------------------
    input_format: str = "auto"
    """auto (by file name) or a name of ``readers.FORMATS``: text, jsonl, parquet, arrow, hf, html."""
    text_field: str = "text"
    """Name of the text column/field in JSONL, Parquet, Arrow and HF inputs."""
    doc_per_file: bool = False
    """Plain text: one document per file instead of blank-line-separated documents."""
    wikitext_headings: bool = False
    """Plain text: top-level `` = Title = `` lines start documents (WikiText layout)."""
    max_line_bytes: int = 64 << 20
    """Lines longer than this are skipped and counted (``line_too_long``): a JSON line holds a whole
    document, so this admits one of ``max_document_chars`` with JSON's escapes (a book in one line)."""
    max_document_chars: int = 8 << 20
    """Documents longer than this are skipped and counted (``document_too_long``)."""

    encoding: str = "auto"
    """Input text encoding: ``auto`` (UTF-8, else by BOM, HTML/XML declaration or detection),
    ``utf-8`` (strict: anything else is dropped as invalid_utf8) or a codec name (cp1252, gb18030, …)."""

    # --- clean ---------------------------------------------------------------
    html: str = "auto"
    """Raw HTML to visible text: ``auto`` (per document, by its look), ``always`` or ``never``."""
    fix_mojibake: bool = True
    """Repair UTF-8 read as Latin-1/cp1252 ("cafÃ©") with ftfy, where a cheap check sees signs of it."""
    unicode_form: str = "NFC"
    line_breaks: str = "auto"
    """How a single newline inside a paragraph is read: ``sentence`` (a boundary,
    the google-research/bert layout), ``space`` (wrapped text) or ``auto``
    (a boundary unless the line visibly continues the sentence)."""
    min_document_chars: int = 1
    dedup: bool = True
    """Drop exact duplicates (same normalised text); the first by content key is kept."""
    near_dedup: NearDupConfig | None = None
    """MinHash/LSH near-duplicate removal (None: off); keeps the smallest content key of a cluster."""
    quality: QualityConfig | None = None
    """C4/Gopher-style document filters and boilerplate-line removal (None: off)."""
    write_removed: bool = False
    """Write every dropped document with its reason to ``removed/`` beside the shards."""

    # --- split / tokenize ------------------------------------------------------
    lang: str = "en"
    do_lower_case: bool | None = None
    """None: follow the vocabulary (uncased when it has no upper-case tokens)."""

    # --- the algorithm (google-research/bert names) ----------------------------
    max_seq_length: int = 128
    max_predictions_per_seq: int | None = None
    """None: follows ``masked_lm_prob``, ``ceil(max_seq_length * masked_lm_prob)`` (BERT's 20 at 128 and
    0.15), resolved when the config is made so the manifest records the number."""
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 5
    do_whole_word_mask: bool = False
    mask_scheme: str = "token"
    """How positions to predict are chosen: a name of ``masking.POSITION_SCHEMES`` (token,
    whole-word, span). ``do_whole_word_mask`` (BERT's name) is the short form of ``whole-word``."""
    random_seed: int = 12345
    next_sentence: str = "nsp"
    """nsp (BERT), sop (ALBERT sentence order), none (single segment), or a packed MLM-only layout of
    ``PACKED_MODES``: full-sentences (rows filled across documents) or doc-sentences (within one)."""
    heldout_fraction: float = 0.01
    """Share of documents (by seeded hash) whose instances go to held-out shards for evaluation."""
    nsp_pool_tokens: int = 1_000_000
    """Random B segments are drawn from a pool: documents are assigned to pools by a
    seeded hash, ceil(total tokens / nsp_pool_tokens) pools in all."""
    mask_replace_prob: float = 0.8
    """Share of the chosen positions shown as [MASK] (Hugging Face's name); BERT's 0.8."""
    random_replace_prob: float = 0.1
    """Share shown as a random ordinary token; the rest (1 - both) keep the original. BERT's 0.1."""
    dynamic_masking: bool = False
    """Shards hold unmasked instances; the loader draws the masks per (random_seed, epoch, row)."""
    mask_copies: int = 1
    """Static masks, N sets per instance stored once (RoBERTa's first recipe); the loader uses set epoch % N."""
    span_p: float = 0.2
    """mask_scheme span: span lengths in words ~ Geometric(span_p) clipped at span_max_words (SpanBERT)."""
    span_max_words: int = 10
    """mask_scheme span: the clip of span lengths, in words."""

    # --- output ----------------------------------------------------------------
    rows_per_shard: int = 16_384
    """~3 MB per shard at sequence 128: many shards spread writing (zstd) over cores and workers."""
    rows_per_batch: int = 16_384
    """Rows per Arrow record batch: the loader's unit of work."""
    length_bin_width: int | None = None
    """Rows per shard group span this many lengths; None: follows max_seq_length (``default_bin_width``)."""
    zstd_level: int = 9
    """Measured on Wikipedia at sequence 128 (``bench/bench_build.py``): level 9 costs a twentieth of
    level 19; dupe_factor 5 gives 1.41 bytes per token (1.26 at 19), dupe_factor 1 1.73 (1.60 at 19)."""

    # --- free-form, recorded but not interpreted ------------------------------
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        need(self.html in HTML_MODES, f"html must be one of {HTML_MODES}, got {self.html!r}")
        try:  # recorded in the manifest as JSON
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            what = "NaN or infinity" if isinstance(exc, ValueError) else str(exc).split(" is not")[0]
            raise ValueError(
                "extra: its values are recorded in the manifest and must be JSON (strings, numbers, booleans, "
                f"lists, tables), not {what.removeprefix('Object of type ')}"
            ) from None
        from corpusgen.masking import POSITION_SCHEMES

        if self.do_whole_word_mask and self.mask_scheme == "token":
            object.__setattr__(self, "mask_scheme", "whole-word")  # the two names of one choice agree
        need(
            self.mask_scheme in POSITION_SCHEMES,
            f"mask_scheme must be one of {tuple(POSITION_SCHEMES)}, got {self.mask_scheme!r}",
        )
        object.__setattr__(self, "do_whole_word_mask", self.mask_scheme == "whole-word")
        if self.encoding not in ("auto", "utf-8"):
            from corpusgen.encoding import normalize_encoding

            normalize_encoding(self.encoding)  # raises ValueError naming the bad codec
        need(
            self.input_format in INPUT_FORMATS,
            f"input_format must be one of {INPUT_FORMATS}, got {self.input_format!r}",
        )
        need(
            self.next_sentence in NEXT_SENTENCE_MODES,
            f"next_sentence must be one of {NEXT_SENTENCE_MODES}, got {self.next_sentence!r}",
        )
        need(
            self.unicode_form in UNICODE_FORMS,
            f"unicode_form must be one of {UNICODE_FORMS}, got {self.unicode_form!r}",
        )
        need(
            self.line_breaks in LINE_BREAK_MODES,
            f"line_breaks must be one of {LINE_BREAK_MODES}, got {self.line_breaks!r}",
        )
        need(bool(self.text_field), "text_field must not be empty")
        check_language(self.lang)  # raises ValueError listing the supported languages
        need(
            not (self.doc_per_file and self.wikitext_headings),
            "doc_per_file and wikitext_headings exclude each other: pick one way to cut documents",
        )
        need(self.max_line_bytes >= 1024, "max_line_bytes must be at least 1024")
        need(self.max_document_chars >= 1, "max_document_chars must be positive")
        need(self.min_document_chars >= 1, "min_document_chars must be at least 1")
        min_len = 5 if self.has_pairs else 3
        need(
            min_len <= self.max_seq_length <= MAX_SEQ_LENGTH,
            f"max_seq_length must be in [{min_len}, {MAX_SEQ_LENGTH}] (room for the special tokens), got {self.max_seq_length}",
        )
        if self.length_bin_width is None:
            object.__setattr__(self, "length_bin_width", default_bin_width(self.max_seq_length, self.packed))
        need(0.0 < self.masked_lm_prob < 1.0, f"masked_lm_prob must be in (0, 1), got {self.masked_lm_prob}")
        if self.max_predictions_per_seq is None:  # follows the rate (round() absorbs float noise as 0.2 * 100)
            derived = math.ceil(round(self.max_seq_length * self.masked_lm_prob, 9))
            object.__setattr__(self, "max_predictions_per_seq", max(1, min(derived, self.max_seq_length - 2)))
        need(self.max_predictions_per_seq >= 1, "max_predictions_per_seq must be at least 1")
        need(
            self.max_predictions_per_seq <= self.max_seq_length - 2,
            f"max_predictions_per_seq ({self.max_predictions_per_seq}) cannot exceed max_seq_length - 2 ({self.max_seq_length - 2})",
        )
        need(0.0 <= self.short_seq_prob <= 1.0, f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")
        need(self.dupe_factor >= 1, f"dupe_factor must be at least 1, got {self.dupe_factor}")
        need(0 <= self.random_seed < 2**63, "random_seed must be in [0, 2**63)")
        need(0.0 <= self.heldout_fraction < 1.0, f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        need(self.nsp_pool_tokens >= 10_000, "nsp_pool_tokens must be at least 10000")
        need(self.rows_per_shard >= 1, "rows_per_shard must be at least 1")
        need(self.rows_per_batch >= 1, "rows_per_batch must be at least 1")
        need(self.length_bin_width >= 1, "length_bin_width must be at least 1")
        need(1 <= self.zstd_level <= 22, "zstd_level must be in [1, 22]")
        for name in ("mask_replace_prob", "random_replace_prob"):
            need(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        need(
            self.mask_replace_prob + self.random_replace_prob <= 1.0 + 1e-12,
            f"mask_replace_prob + random_replace_prob must be at most 1 (the rest keep the original), got "
            f"{self.mask_replace_prob} + {self.random_replace_prob}",
        )
        need(self.mask_copies >= 1, f"mask_copies must be at least 1, got {self.mask_copies}")
        need(
            not (self.dynamic_masking and self.mask_copies > 1),
            "dynamic_masking and mask_copies > 1 exclude each other: masks are drawn by the loader or stored, not both",
        )
        need(0.0 < self.span_p <= 1.0, f"span_p must be in (0, 1], got {self.span_p}")
        need(self.span_max_words >= 1, f"span_max_words must be at least 1, got {self.span_max_words}")

    def warnings(self) -> list[str]:
        """What this config does that its user may not expect: valid, so printed, not refused."""
        out = []
        if self.max_seq_length > BERT_MAX_POSITIONS:
            out.append(
                f"max_seq_length {self.max_seq_length} exceeds the {BERT_MAX_POSITIONS} positions of standard BERT "
                f"models: only a model with at least {self.max_seq_length} position embeddings can train on this build"
            )
        if self.masking_capped:
            wanted = round(self.max_num_tokens * self.masked_lm_prob)
            out.append(
                f"max_predictions_per_seq {self.max_predictions_per_seq} caps masking below masked_lm_prob "
                f"{self.masked_lm_prob} in instances of {self.masking_cap_tokens} tokens or more: a full one gets {self.max_predictions_per_seq} of the {wanted} masks it "
                f"asks for ({self.max_predictions_per_seq / self.max_num_tokens:.1%} of its tokens); "
                f"--max-predictions-per-seq {wanted} masks at the full rate"
            )
        return out

    @property
    def masking_capped(self) -> bool:
        """True when ``max_predictions_per_seq`` is below ``masked_lm_prob`` of a full-length instance."""
        return self.masking_cap_tokens is not None

    @property
    def masking_cap_tokens(self) -> int | None:
        """Fewest ordinary tokens in an instance at which ``max_predictions_per_seq`` cuts its masks (None: never)."""
        n = max(1, int(self.max_predictions_per_seq / self.masked_lm_prob))
        while n <= self.max_num_tokens:
            if round(n * self.masked_lm_prob) > self.max_predictions_per_seq:  # as corpusgen.masking counts
                return n
            n += 1
        return None

    # --- derived ------------------------------------------------------------------
    @property
    def max_num_tokens(self) -> int:
        """Tokens left for A and B after [CLS] A [SEP] B [SEP] (or [CLS] A [SEP])."""
        return self.max_seq_length - (3 if self.has_pairs else 2)

    @property
    def has_pairs(self) -> bool:
        """Rows are ``[CLS] A [SEP] B [SEP]`` pairs with an NSP/SOP label (nsp, sop)."""
        return self.next_sentence in ("nsp", "sop")

    @property
    def packed(self) -> bool:
        """Rows pack consecutive text (``PACKED_MODES``) and carry the ``doc_starts`` column."""
        return self.next_sentence in PACKED_MODES

    def bin_of(self, length):
        """Index of the length bin holding sequences of ``length`` tokens (an int, or an int array)."""
        return (length - 1) // self.length_bin_width

    def bin_range(self, index: int) -> tuple[int, int]:
        lo = index * self.length_bin_width + 1
        return lo, min(self.max_seq_length, lo + self.length_bin_width - 1)

    # --- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> BuildConfig:
        """A copy with ``changes``; a ``max_predictions_per_seq`` that followed the rate keeps following it."""
        rate_inputs = ("masked_lm_prob", "max_seq_length")
        if "max_predictions_per_seq" not in changes and any(k in changes for k in rate_inputs):
            followed = BuildConfig(**{k: getattr(self, k) for k in rate_inputs + ("next_sentence",)})
            if followed.max_predictions_per_seq == self.max_predictions_per_seq:
                changes["max_predictions_per_seq"] = None
        if "mask_scheme" in changes and "do_whole_word_mask" not in changes:  # the scheme decides the short form
            changes["do_whole_word_mask"] = changes["mask_scheme"] == "whole-word"
        if "do_whole_word_mask" in changes and "mask_scheme" not in changes:  # the short form names the scheme
            wwm = changes["do_whole_word_mask"]
            changes["mask_scheme"] = "whole-word" if wwm else ("token" if self.do_whole_word_mask else self.mask_scheme)
        if "length_bin_width" not in changes and self.length_bin_width == default_bin_width(
            self.max_seq_length, self.packed
        ):  # a width that followed max_seq_length follows the new one
            changes["length_bin_width"] = None
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> BuildConfig:
        check_known_options(data, [f.name for f in dataclasses.fields(cls)], source)
        data = dict(data)
        check_option_types(cls, data, source)
        for name, typ in (("quality", QualityConfig), ("near_dedup", NearDupConfig)):
            value = data.get(name)
            if value is True:
                data[name] = typ()
            elif value is False:
                data[name] = None
            elif isinstance(value, dict):
                check_known_options(value, [f.name for f in dataclasses.fields(typ)], source, f"{name} ")
                check_option_types(typ, value, f"{source}: {name}")
                data[name] = typ(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        try:
            return cls(**data)
        except ValueError as exc:  # a value out of range: say where it was written
            if source in ("config", "options"):
                raise
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> BuildConfig:
        """Read a ``.toml`` or ``.json`` config (top-level keys, or a ``[build]`` table)."""
        return cls.from_dict(read_config_file(path, "build"), source=str(path))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a config file's ``value`` fits a field annotated ``hint`` (an int is a fine float, a bool
    neither an int nor a float; a list is a fine tuple; a nested options class takes a table or true/false)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    hint = typing.get_origin(hint) or hint
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (tuple, list):
        return isinstance(value, (tuple, list))
    if dataclasses.is_dataclass(hint):
        return isinstance(value, (hint, dict, bool))
    return isinstance(value, hint) if isinstance(hint, type) else True


def _kind(hint: Any) -> str:
    """A field's type as a config file's reader says it: "an integer", "a number or none", ..."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(arg) for arg in typing.get_args(hint))
    hint = typing.get_origin(hint) or hint
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table",
             tuple: "a list", list: "a list", type(None): "none"}  # fmt: skip
    if dataclasses.is_dataclass(hint):
        return "a table of options or true/false"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def check_known_options(data: dict, known: list[str], source: str, kind: str = "") -> None:
    """Stop on a key that is no option, naming the option it most likely misspells."""
    unknown = sorted(set(data) - set(known))
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        named.append(f"{key} (did you mean {close[0]}?)" if close else key)
    raise ValueError(f"{source}: unknown {kind}option(s) {', '.join(named)}; known: {', '.join(sorted(known))}")


def check_option_types(cls: type, data: dict[str, Any], source: str) -> None:
    """Refuse, in one line naming ``source`` and the key, a value of the wrong type for its field of
    the dataclass ``cls`` (the fields' annotations say the types); the one type check of config files.

    Without it a string "false" would pass for a true bool and 64.7 for a length, failing (or not)
    deep inside a job.
    """
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key in hints and not _fits(value, hints[key]):
            raise ValueError(f"{source}: {key} = {value!r} should be {_kind(hints[key])}")


def default_bin_width(max_seq_length: int, packed: bool = False) -> int:
    """Length-bin width when the config gives none: 16 up to 512 tokens, then max_seq_length // 32;
    packed layouts half that (8 up to 512, then max_seq_length // 64).

    Up to 512 this is the width measured so far (8 bins at 128). Beyond, a fixed width would make
    hundreds of bins (and shards per pool) at 8,192, while the padding a bin costs is relative to
    the row: 32 bins keep the loader's worst case (a row at the bottom of its bin in a batch at the
    top) at a thirty-second of the row. Packed rows are full except near a document's or pool's
    end; those short rows are spread over all lengths, so packed builds bin twice as finely
    (8 = the loader's pad multiple): on the bundled sample that halves doc-sentences' padding
    bound at 128, from 3.1% to 1.5% (README).
    """
    if packed:
        return 8 if max_seq_length <= 512 else max_seq_length // 64
    return 16 if max_seq_length <= 512 else max_seq_length // 32


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(repr(key))
        out[key] = value
    return out


def read_config_file(path: str | Path, table: str) -> dict[str, Any]:
    """The options in a ``.toml`` / ``.json`` file: its ``[table]`` table if it has one, else its top level.

    The one reader of config files (build and train): a missing file, invalid TOML/JSON or a
    file that is not a table of options raises ``ValueError`` with one line naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{path}: cannot read config ({why}); check the path") from None
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicate_keys) if kind == "JSON" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not valid {kind} ({exc})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a config ({kind} nested too deep to read)") from None
    except _DuplicateKey as exc:  # TOML refuses them itself; JSON would keep the last one silently
        raise ValueError(f"{path}: {exc} is given twice; keep one") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds a table of options, not {type(data).__name__}")
    if isinstance(data.get(table), dict):
        data = data[table]
    return data
