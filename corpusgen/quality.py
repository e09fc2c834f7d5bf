"""Document quality filters in the style of C4 (Raffel et al., 2020) and Gopher (Rae et al., 2021).

Two entry points, meant to run in this order:

- :func:`strip_boilerplate_lines` removes lines (not documents) that are site boilerplate: cookie and
  JavaScript notices, "terms of use", "all rights reserved", share and sign-up prompts. It returns the
  cleaned text and how many lines it removed, so the pipeline can count them.
- :func:`check_document` answers "keep or drop, and why": ``None`` to keep, otherwise one of the drop
  reason constants below (all in ``DROP_REASONS``). Rules run cheapest first and the first failing rule
  is the reason. A build counts the drop as ``stats.QUALITY_PREFIX + reason`` (``quality_too_short``).

Every threshold lives in :class:`QualityConfig`, with Gopher's (appendix A, table A1) values as defaults;
setting a threshold to ``None`` switches its rule off. Word-based rules count whitespace-separated
words, except that each Han/Kana character counts as a word (Chinese and Japanese put no spaces between
words); the word-length and stop-word rules, which only make sense for space-separated languages, are
skipped for documents that are mostly Han/Kana.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import regex

from corpusgen import unicode_ranges

__all__ = [
    "BULLET_LINES",
    "CURLY_BRACKET",
    "ELLIPSIS_LINES",
    "LOREM_IPSUM",
    "MEAN_WORD_LENGTH",
    "REPEATED_DUP_NGRAM",
    "REPEATED_LINES",
    "REPEATED_LINE_CHARS",
    "REPEATED_PARAGRAPHS",
    "REPEATED_PARAGRAPH_CHARS",
    "REPEATED_TOP_NGRAM",
    "SYMBOL_TO_WORD_RATIO",
    "TOO_FEW_ALPHA_WORDS",
    "TOO_FEW_SENTENCES",
    "TOO_FEW_STOP_WORDS",
    "TOO_LONG",
    "TOO_SHORT",
    "WRONG_LANGUAGE",
    "WRONG_SCRIPT",
    "DROP_REASONS",
    "QualityConfig",
    "check_document",
    "detect_language",
    "dominant_script",
    "strip_boilerplate_lines",
]

# Drop reasons: stable snake_case names the pipeline counts and the manifest reports.
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
TOO_FEW_SENTENCES = "too_few_sentences"
LOREM_IPSUM = "lorem_ipsum"
CURLY_BRACKET = "curly_bracket"
MEAN_WORD_LENGTH = "mean_word_length"
SYMBOL_TO_WORD_RATIO = "symbol_to_word_ratio"
BULLET_LINES = "bullet_lines"
ELLIPSIS_LINES = "ellipsis_lines"
TOO_FEW_ALPHA_WORDS = "too_few_alpha_words"
TOO_FEW_STOP_WORDS = "too_few_stop_words"
REPEATED_LINES = "repeated_lines"
REPEATED_LINE_CHARS = "repeated_line_chars"
REPEATED_PARAGRAPHS = "repeated_paragraphs"
REPEATED_PARAGRAPH_CHARS = "repeated_paragraph_chars"
REPEATED_TOP_NGRAM = "repeated_top_ngram"
REPEATED_DUP_NGRAM = "repeated_dup_ngram"
WRONG_LANGUAGE = "wrong_language"
WRONG_SCRIPT = "wrong_script"

DROP_REASONS = (
    LOREM_IPSUM,
    CURLY_BRACKET,
    TOO_FEW_SENTENCES,
    TOO_SHORT,
    TOO_LONG,
    MEAN_WORD_LENGTH,
    SYMBOL_TO_WORD_RATIO,
    BULLET_LINES,
    ELLIPSIS_LINES,
    TOO_FEW_ALPHA_WORDS,
    TOO_FEW_STOP_WORDS,
    REPEATED_LINES,
    REPEATED_LINE_CHARS,
    REPEATED_PARAGRAPHS,
    REPEATED_PARAGRAPH_CHARS,
    REPEATED_TOP_NGRAM,
    REPEATED_DUP_NGRAM,
    WRONG_SCRIPT,
    WRONG_LANGUAGE,
)

# Gopher's stop-word rule: real English prose uses at least two of these.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "◦", "‣", "⁃", "∙", "·", "►", "▶", "➢", "➤", "✓", "✔", "-", "–", "*")
SCRIPTS = ("Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Han", "Hiragana", "Katakana", "Hangul", "Thai",
           "Devanagari", "Bengali", "Tamil", "Georgian", "Armenian")  # fmt: skip


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the document filters; ``None`` (or an empty tuple) switches a rule off.

    Defaults are Gopher's, plus C4's minimum of three sentences and lorem-ipsum rule. The stop-word
    rule is English; set ``min_stop_words=None`` for other languages. ``languages`` (ISO 639-1 codes,
    e.g. ``("en",)``) enables language identification with py3langid, whose model ships inside the
    package; ``scripts`` (Unicode script names, e.g. ``("Latin",)``) is the cheap alternative.
    """

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_sentences: int | None = 3
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_to_word_ratio: float | None = 0.1
    max_bullet_lines: float | None = 0.9
    max_ellipsis_lines: float | None = 0.3
    min_alpha_words: float | None = 0.8
    min_stop_words: int | None = 2
    max_repeated_lines: float | None = 0.3
    max_repeated_line_chars: float | None = 0.2
    max_repeated_paragraphs: float | None = 0.3
    max_repeated_paragraph_chars: float | None = 0.2
    # Largest share of characters the most frequent n-gram may cover, for n = 2, 3, 4.
    max_top_ngram_chars: tuple[float, ...] | None = (0.20, 0.18, 0.16)
    # Largest share of characters in repeated n-grams, for n = 5 … 10.
    max_dup_ngram_chars: tuple[float, ...] | None = (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)
    drop_lorem_ipsum: bool = True
    # C4 drops any page with "{" as likely code; off by default because it also drops prose about code.
    drop_curly_bracket: bool = False
    languages: tuple[str, ...] = ()
    min_language_score: float = 0.5
    scripts: tuple[str, ...] = ()
    min_script_share: float = 0.5
    # strip_boilerplate_lines: only lines this short are removed (a long paragraph that mentions
    # cookies is content), and optionally C4's rule that a kept line ends in terminal punctuation.
    strip_boilerplate: bool = True
    max_boilerplate_line_words: int = 40
    require_terminal_punctuation: bool = False

    def __post_init__(self) -> None:
        pairs = (
            ("min_words", "max_words"),
            ("min_mean_word_length", "max_mean_word_length"),
        )
        for low, high in pairs:
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"QualityConfig: {low}={lo} is above {high}={hi}")
        for name in (
            "max_symbol_to_word_ratio",
            "max_bullet_lines",
            "max_ellipsis_lines",
            "min_alpha_words",
            "max_repeated_lines",
            "max_repeated_line_chars",
            "max_repeated_paragraphs",
            "max_repeated_paragraph_chars",
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"QualityConfig: {name}={value} must be a share in [0, 1]")
        if self.max_top_ngram_chars is not None and len(self.max_top_ngram_chars) != 3:
            raise ValueError("QualityConfig: max_top_ngram_chars needs 3 values (n = 2, 3, 4)")
        if self.max_dup_ngram_chars is not None and len(self.max_dup_ngram_chars) != 6:
            raise ValueError("QualityConfig: max_dup_ngram_chars needs 6 values (n = 5 … 10)")
        unknown = set(self.scripts) - set(SCRIPTS)
        if unknown:
            raise ValueError(f"QualityConfig: unknown scripts {sorted(unknown)}; known: {', '.join(SCRIPTS)}")
        # Lists from a JSON/YAML config become tuples, so the config stays hashable and immutable.
        for name in ("languages", "scripts", "max_top_ngram_chars", "max_dup_ngram_chars"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if self.languages:  # "EN" is en; a code the identifier never returns would drop every document
            languages = tuple(str(code).strip().lower() for code in self.languages)
            known = known_languages()
            unknown = [code for code in languages if code not in known]
            if unknown:
                raise ValueError(
                    f"QualityConfig: languages {', '.join(map(repr, unknown))} unknown to the language identifier; "
                    f"give ISO 639-1 codes such as en, de, zh (known: {', '.join(known)})"
                )
            object.__setattr__(self, "languages", languages)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Han and Kana, one word a character (stdlib re: several times faster than the regex module on these patterns).
_CJK = unicode_ranges.UNSPACED
_WORD_RE = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_CJK_RE = re.compile(f"[{_CJK}]")
_ALPHA_RE = regex.compile(r"\p{L}")
# A word without a letter, one word per line (see _alpha_word_count).
_NO_LETTER_LINE_RE = re.compile(r"^(?:(?![^\W\d_])[^\n])+$", re.MULTILINE)
_NOT_WORD_CHAR_RE = re.compile(r"[\W_]+")
_EDGE_PUNCT = "\"'“”‘’«»()[]{}<>.,;:!?…*-–—_/\\|"
_TERMINAL_PUNCT = (".", "!", "?", '"', "”", "’", "'", "…", "。", "！", "？", ")", "」", "』")
_LOREM_RE = regex.compile(r"lorem ipsum", regex.IGNORECASE)

# Each pattern describes a boilerplate line on its own; the length cap in the config keeps real
# paragraphs that happen to mention cookies or privacy.
_BOILERPLATE_RE = re.compile(
    r"""
    \bcookies?\b.{0,120}\b(?:accept|agree|consent|continu|polic|settings|preferences|browsing|experience|use\ of)
    | \b(?:we|this\ (?:web)?site|our\ (?:web)?site)\b.{0,60}\buses?\ cookies\b
    | \baccept\ (?:all\ )?cookies\b
    | \bjavascript\b.{0,60}\b(?:enable|disabled|required|turn(?:ed)?\ on|support)
    | \b(?:enable|turn\ on|requires?)\b.{0,40}\bjavascript\b
    | \bterms\ (?:of|and)\ (?:use|service|conditions)\b
    | \bprivacy\ (?:policy|notice|statement|settings)\b
    | \ball\ rights\ reserved\b
    | ^\s*(?:©|\(c\)\s|copyright\s*(?:©|\(c\)|\d{4}))
    | \b(?:sign\ up|subscribe)\b.{0,50}\b(?:newsletter|mailing\ list|updates|inbox)\b
    | ^\s*(?:share\ (?:this|on|via)|follow\ us\ on|click\ here\ to|skip\ to\ (?:main\ )?content|back\ to\ top
            |read\ more\s*$|log\ ?in\s*$|sign\ in\s*$|register\s*$|advertisement\s*$|loading\.{0,3}\s*$)
    | \byour\ browser\ (?:does\ not|doesn't)\ support\b
    | \bpowered\ by\ (?:wordpress|blogger|shopify|squarespace|wix)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
# Every line _BOILERPLATE_RE matches contains one of these. Substring tests on the lowered line cost a
# few microseconds; the full pattern (or an alternation regex) costs ten times more, on every line.
_BOILERPLATE_HINTS = (
    "cookie", "javascript", "terms", "privacy", "rights", "©", "(c)", "copyright", "sign", "subscri", "share",
    "follow", "click", "skip", "back to", "read more", "log", "register", "advertisement", "loading", "browser",
    "powered",
)  # fmt: skip


def _has_hint(lowered_line: str) -> bool:
    return any(hint in lowered_line for hint in _BOILERPLATE_HINTS)


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _is_cjk_dominant(text: str, words: Sequence[str]) -> bool:
    return bool(words) and _CJK_RE.search(text) is not None and len(_CJK_RE.findall(text)) > 0.5 * len(words)


def _alpha_word_count(words: list[str]) -> int:
    # One regex pass over the words joined by newlines instead of one Python call per word.
    return len(words) - len(_NO_LETTER_LINE_RE.findall("\n".join(words)))


def _non_empty_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def strip_boilerplate_lines(text: str, cfg: QualityConfig | None = None) -> tuple[str, int]:
    """Remove boilerplate lines; returns ``(text, removed_line_count)``. Blank lines (paragraph breaks)
    are kept, collapsed to one where a whole paragraph went."""
    cfg = cfg or QualityConfig()
    if not cfg.strip_boilerplate and not cfg.require_terminal_punctuation:
        return text, 0
    kept: list[str] = []
    removed = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            if kept and kept[-1]:
                kept.append("")
            continue
        if (
            cfg.strip_boilerplate
            and _has_hint(stripped.lower())
            and len(stripped.split()) <= cfg.max_boilerplate_line_words
            and _BOILERPLATE_RE.search(stripped)
        ) or (cfg.require_terminal_punctuation and not stripped.endswith(_TERMINAL_PUNCT)):
            removed += 1
            continue
        kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return ("\n".join(kept) if removed else text), removed


def _duplicate_fraction(items: list[str]) -> tuple[float, float]:
    """Gopher's duplicate fractions: share of items that repeat an earlier one, and share of characters
    in those repeats."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_items = dup_chars = total_chars = 0
    for item in items:
        total_chars += len(item)
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items / len(items), (dup_chars / total_chars if total_chars else 0.0)


def _ngram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """One uint64 key per word n-gram: a polynomial over the word hashes, wrapping mod 2**64."""
    key = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n):
            key = key * np.uint64(0x100000001B3) + ids[i : len(ids) - n + 1 + i]
    return key


def _repetition_reason(words: list[str], cfg: QualityConfig) -> str | None:
    if cfg.max_top_ngram_chars is None and cfg.max_dup_ngram_chars is None:
        return None
    # Python's (per-process salted) string hash as word id: only equality matters here, and a 64-bit
    # collision inside one document is too rare to change a decision.
    ids = np.fromiter(map(hash, map(str.lower, words)), dtype=np.int64, count=len(words)).view(np.uint64)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    total_chars = int(lengths.sum())
    if not total_chars:
        return None
    cum = np.concatenate(([0], np.cumsum(lengths)))
    if cfg.max_top_ngram_chars is not None:
        for n, limit in zip((2, 3, 4), cfg.max_top_ngram_chars, strict=True):
            if len(ids) < n:
                break
            keys = _ngram_keys(ids, n)
            ordered = np.sort(keys)
            run_starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
            counts = np.diff(np.append(run_starts, len(ordered)))
            top_count = int(counts.max())
            if top_count < 2:
                continue
            # Ties between equally frequent n-grams go to the longest in characters: deterministic, and
            # the n-gram that covers the most text is the one the rule is about.
            tied = np.isin(keys, ordered[run_starts[counts == top_count]])
            chars = int((cum[n:] - cum[:-n])[tied].max()) * top_count
            if chars / total_chars > limit:
                return REPEATED_TOP_NGRAM
    if cfg.max_dup_ngram_chars is not None:
        for n, limit in zip(range(5, 11), cfg.max_dup_ngram_chars, strict=True):
            if len(ids) < n:
                break
            keys = _ngram_keys(ids, n)
            # Stable sort: within a run of equal keys the first is the earliest occurrence, the rest repeat it.
            order = np.argsort(keys, kind="stable")
            ordered = keys[order]
            starts = order[1:][ordered[1:] == ordered[:-1]]
            if not len(starts):
                break  # no repeated n-gram, so no repeated longer one either
            # Words covered by any repeated occurrence, each counted once however many overlap it.
            size = len(ids) + 1
            cover = np.bincount(starts, minlength=size) - np.bincount(starts + n, minlength=size)
            covered = np.cumsum(cover[:-1]) > 0
            if int(lengths[covered].sum()) / total_chars > limit:
                return REPEATED_DUP_NGRAM
    return None


_LANGID_LOCK = threading.Lock()
_LANGID = None
_LANGID_CHARS = 2000


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) from py3langid on the first 2,000 characters.

    The model (97 languages) ships inside the py3langid wheel and loads once per process (~0.7 s).
    """
    lang, prob = _language_identifier().classify(text[:_LANGID_CHARS])
    return lang, float(prob)


def _language_identifier():
    global _LANGID
    if _LANGID is None:
        with _LANGID_LOCK:
            if _LANGID is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _LANGID = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _LANGID


def known_languages() -> list[str]:
    """The codes ``detect_language`` can return (loads its model)."""
    return sorted(set(_language_identifier().nb_classes))


_SCRIPT_RES = {name: regex.compile(rf"\p{{Script={name}}}") for name in SCRIPTS}


def dominant_script(text: str) -> tuple[str | None, float]:
    """The Unicode script most letters of the text are in, and its share of the letters (first 2,000
    characters; Hiragana and Katakana count with Han, as Japanese mixes all three)."""
    sample = text[:_LANGID_CHARS]
    letters = len(_ALPHA_RE.findall(sample))
    if not letters:
        return None, 0.0
    counts = {name: len(pattern.findall(sample)) for name, pattern in _SCRIPT_RES.items()}
    counts["Han"] += counts.pop("Hiragana") + counts.pop("Katakana")
    name = max(counts, key=counts.__getitem__)
    return name, counts[name] / letters


def check_document(text: str, sentences: Sequence[str] | None = None, cfg: QualityConfig | None = None) -> str | None:
    """``None`` to keep the document, else the reason (a constant of this module) to drop it.

    ``sentences`` is the document's sentence list; without it the sentence rule is skipped. Run
    :func:`strip_boilerplate_lines` first: these rules judge what would be kept.
    """
    cfg = cfg or QualityConfig()
    if cfg.drop_lorem_ipsum and _LOREM_RE.search(text):
        return LOREM_IPSUM
    if cfg.drop_curly_bracket and "{" in text:
        return CURLY_BRACKET
    if cfg.min_sentences is not None and sentences is not None and len(sentences) < cfg.min_sentences:
        return TOO_FEW_SENTENCES
    words = _words(text)
    n_words = len(words)
    if cfg.min_words is not None and n_words < cfg.min_words:
        return TOO_SHORT
    if cfg.max_words is not None and n_words > cfg.max_words:
        return TOO_LONG
    if not n_words:
        return None  # nothing more to judge, and the length rules are off
    cjk = _is_cjk_dominant(text, words)
    if not cjk and (cfg.min_mean_word_length is not None or cfg.max_mean_word_length is not None):
        # Gopher measures words without their punctuation: count word characters only.
        mean = (len(text) - sum(map(len, _NOT_WORD_CHAR_RE.findall(text)))) / n_words
        if (cfg.min_mean_word_length is not None and mean < cfg.min_mean_word_length) or (
            cfg.max_mean_word_length is not None and mean > cfg.max_mean_word_length
        ):
            return MEAN_WORD_LENGTH
    if cfg.max_symbol_to_word_ratio is not None:
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n_words > cfg.max_symbol_to_word_ratio:
            return SYMBOL_TO_WORD_RATIO
    lines = _non_empty_lines(text)
    if lines and cfg.max_bullet_lines is not None:
        bullets = sum(1 for line in lines if line.startswith(BULLETS))
        if bullets / len(lines) > cfg.max_bullet_lines:
            return BULLET_LINES
    if lines and cfg.max_ellipsis_lines is not None:
        ellipses = sum(1 for line in lines if line.endswith(("...", "…")))
        if ellipses / len(lines) > cfg.max_ellipsis_lines:
            return ELLIPSIS_LINES
    if cfg.min_alpha_words is not None:
        if _alpha_word_count(words) / n_words < cfg.min_alpha_words:
            return TOO_FEW_ALPHA_WORDS
    # Before the English stop-word rule, so a German page is counted as wrong_language, not as spam.
    if cfg.scripts:
        script, share = dominant_script(text)
        if script not in cfg.scripts or share < cfg.min_script_share:
            return WRONG_SCRIPT
    if cfg.languages:
        lang, prob = detect_language(text)
        if lang not in cfg.languages or prob < cfg.min_language_score:
            return WRONG_LANGUAGE
    if not cjk and cfg.min_stop_words is not None:
        found = 0
        for w in words:
            if w.lower().strip(_EDGE_PUNCT) in GOPHER_STOP_WORDS:
                found += 1
                if found >= cfg.min_stop_words:
                    break
        if found < cfg.min_stop_words:
            return TOO_FEW_STOP_WORDS
    if cfg.max_repeated_lines is not None or cfg.max_repeated_line_chars is not None:
        share, char_share = _duplicate_fraction(lines)
        if cfg.max_repeated_lines is not None and share > cfg.max_repeated_lines:
            return REPEATED_LINES
        if cfg.max_repeated_line_chars is not None and char_share > cfg.max_repeated_line_chars:
            return REPEATED_LINE_CHARS
    if cfg.max_repeated_paragraphs is not None or cfg.max_repeated_paragraph_chars is not None:
        paragraphs = [p.strip() for p in regex.split(r"\n\s*\n", text) if p.strip()]
        share, char_share = _duplicate_fraction(paragraphs)
        if cfg.max_repeated_paragraphs is not None and share > cfg.max_repeated_paragraphs:
            return REPEATED_PARAGRAPHS
        if cfg.max_repeated_paragraph_chars is not None and char_share > cfg.max_repeated_paragraph_chars:
            return REPEATED_PARAGRAPH_CHARS
    reason = _repetition_reason(words, cfg)
    if reason is not None:
        return reason
    return None
