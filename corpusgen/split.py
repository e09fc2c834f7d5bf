"""Rule-based sentence splitting for English, CJK and the common European languages.

One compiled regex finds every *candidate* boundary in a document (sentence
punctuation followed by whitespace, CJK sentence punctuation, line breaks,
bullets, list markers, emoticons); each candidate is then settled by a few
cheap checks on the token before it and the token after it. Nothing loops
over characters in Python, which keeps the splitter at tens of MB/s.

The split only ever cuts the text: joining the returned sentences gives back
every non-space character of the input, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from corpusgen import split_rules, unicode_ranges
from corpusgen.split_rules import ALWAYS, AMBIGUOUS, NUMERIC, TITLE

__all__ = ["split_sentences", "guess_language", "check_language", "LANGUAGES", "LINE_BREAK_MODES"]

LINE_BREAK_MODES = ("auto", "sentence", "space")

# Closers count only right after a stop, so German's closing “ and ‘ can be
# listed beside English's ” and ’.
_CLOSERS = "\"'”’“‘»«)\\]}」』】〕〉》）〗〙〛＂＇›‹"
_CJK_CLOSERS = "\"'”’»)\\]}」』】〕〉》）〗〙〛＂＇›"
_OPENERS = "\"'“‘«„‚(\\[{¿¡「『【〔〈《（‹"
_BULLETS = "•◦▪●‣■►▸⁃"
_TERMINALS = ".!?…‽‼⁇⁈⁉।॥؟"
_CJK_TERMINALS = "。！？｡"
_CJK_CHARS = unicode_ranges.CJK
_BREAK = r"(?:\r\n|[\r\n\u2028\u2029\x85\x0b\x0c])"

_BREAK_CHARS = "\r\n\u2028\u2029\x85\x0b\x0c"
_HSPACE = rf"[^\S{_BREAK_CHARS}]"
# Every candidate starts with one of these characters. The pattern opens with
# this one class so the regex engine can skip straight to the next trigger
# (an alternation of groups at the top would make it try each branch at every
# position, five times slower); each branch then checks which trigger it got.
_TRIGGERS = f"{_TERMINALS}{_CJK_TERMINALS}．{_BREAK_CHARS}{_BULLETS}):;=^<"
_CANDIDATE = re.compile(
    rf"[{_TRIGGERS}](?:"
    # Latin-style stop: . ! ? runs, "..." and spaced ". . .", then closing quotes
    # or brackets, then whitespace. French puts a space before its closing ».
    rf"(?<=[{_TERMINALS}])(?P<t>[{_TERMINALS}]*(?:[ \u00a0][.…]+(?!\w))*)"
    rf"(?P<c>[{_CLOSERS}]*(?:[ \u00a0\u202f]»)?)(?=\s|\Z)"
    # CJK stop: no space follows it; ASCII !? count between CJK characters.
    rf"|(?:(?<=[{_CJK_TERMINALS}])[{_CJK_TERMINALS}!?]*(?:[…⋯]+(?=[{_CJK_CLOSERS}]))?|(?<=[{_CJK_CHARS}][!?])[!?]*(?=[{_CJK_CLOSERS}]*[{_CJK_CHARS}])|(?<=[^A-Za-zＡ-Ｚａ-ｚ0-9０-９]．)(?![0-9０-９]))"
    rf"(?P<kc>[{_CJK_CLOSERS}]*)"
    rf"|(?<=[{_BREAK_CHARS}])(?P<n>(?:{_HSPACE}*{_BREAK})*)"
    rf"|(?<=[{_BULLETS}])(?P<b>)"
    r"|(?<=\))(?P<m>)(?=\s)"
    r"|(?P<e>(?<=[:;=])[-o']?[)(\]\[dDpP/|*3]|(?<=\^)_*\^|(?<=<)3)(?=\s|\Z)"
    r")"
)
_LIST_PAREN = re.compile(r"(?<!\S)([0-9]{1,2})(\.?)\)\Z")
_NEXT_TOKEN = re.compile(r"\s*(\S*)")
_TOKEN_TAIL = re.compile(rf"[^{_CJK_CHARS}\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]*\Z")
_WORD = re.compile(r"\w+")
_ACRONYM = re.compile(r"(?:[^\W\d_]{1,4}\.)+([^\W\d_]{1,4})")
# Host names look like acronyms ("www.bbc.co.uk") but end sentences like words.
_DOMAINS = frozenset("com org net edu gov mil int info biz io co uk de fr jp cn ru au ca in nl eu us".split())
_ROMAN = re.compile(r"[IVXLC]+\b")
_EMOTICON = re.compile(r"[:;=][-o']?[)(\]\[dDpP/|*3]|\^_*\^|<3")
_INNER_BREAKS = re.compile(rf"\s*{_BREAK}\s*")
_HAS_BREAK = re.compile(r"[\r\n\u2028\u2029\x85\x0b\x0c]")
_LINE_BREAKS = re.compile(_BREAK)
_VOWELS = frozenset("aeiouyAEIOUY")
_SPACE_AND_BULLETS = _BULLETS + " \t\n\r\u00a0\u3000"
_LINE_FINAL = frozenset(_TERMINALS + _CJK_TERMINALS + "．")
_CONTINUATION = frozenset(",;:)]}%")
_CJK_AFTER_STOP = frozenset("，、,;；：:.!?．" + _CJK_CLOSERS + _CJK_TERMINALS)

# Words that continue a sentence after a quoted sentence: 「法官如何判決？」等問題,
# 「行く。」と言った.
_QUOTE_PARTICLES = {
    "zh": ("等", "的", "和", "與", "与", "及"),
    "ja": ("と", "って", "っ", "など", "の"),
}

# Languages that write ordinal numbers with a period ("am 3. Oktober").
_ORDINAL_DOT = frozenset("de pl cs sk da no nb nn sv fi hu sl hr sr bs et lv lt is tr".split())

# Token classes for the word before a period.
_WORDLIKE, _NUMBER, _INITIAL, _ACRONYM_CLASS = 10, 11, 12, 13


@dataclass(frozen=True)
class _Rules:
    lang: str
    folded: dict[str, int]
    exact: dict[str, int]
    starters: frozenset[str]
    lowercase_starts: bool
    ordinal_dot: bool
    quote_particles: tuple[str, ...]
    suffixes: tuple[str, ...]


@lru_cache(maxsize=64)
def _rules_for(lang: str) -> _Rules:
    folded, exact = split_rules.abbreviation_tables(lang)
    return _Rules(
        lang=lang,
        folded=folded,
        exact=exact,
        starters=split_rules.starters(lang),
        # Only English web text is known well enough to trust a lowercase
        # word after a period as a new sentence.
        lowercase_starts=lang == "en",
        ordinal_dot=lang in _ORDINAL_DOT,
        quote_particles=_QUOTE_PARTICLES.get(lang, _QUOTE_PARTICLES["zh"]),
        suffixes=split_rules.ABBREVIATION_SUFFIXES.get(lang, ()),
    )


def _normalise_lang(lang: str) -> str:
    code = lang.strip().lower().replace("_", "-").split("-")[0]
    return code or "en"


# The languages this splitter has rules for (abbreviations and sentence starters, ordinal
# dots, quote particles), Korean (whose punctuation the common rules cover, and which
# guess_language returns), and "auto". The config and the command line refuse any other code.
LANGUAGES = ("auto", *sorted(set(split_rules.STARTERS) | _ORDINAL_DOT | set(_QUOTE_PARTICLES) | {"ko"}))


def check_language(lang: str) -> str:
    """The normalised code of ``lang`` ("en_US" → "en"), or ``ValueError`` listing the supported ones."""
    code = _normalise_lang(lang)
    if code not in LANGUAGES:
        raise ValueError(f"lang {lang!r} is not supported; choose one of {', '.join(LANGUAGES)}")
    return code


# ----------------------------------------------------------------------------
# language guess

_KANA = re.compile(f"[{unicode_ranges.KANA}]")
_HAN = re.compile(f"[{unicode_ranges.HAN}]")
_HANGUL = re.compile(f"[{unicode_ranges.HANGUL}]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_NONSPACE = re.compile(r"\S")
_LATIN_WORD = re.compile(r"[^\W\d_]+")
_HINTS = {lang: frozenset(words.split()) for lang, words in split_rules.LANG_HINTS.items()}


def guess_language(text: str, sample: int = 2000) -> str:
    """Cheap guess of a document's language from its first `sample` characters.

    Script shares decide CJK and Cyrillic; Latin-script text is given to the
    language whose most frequent function words occur most. Falls back to "en".
    """
    head = text[:sample]
    total = len(_NONSPACE.findall(head))
    if not total:
        return "en"
    if len(_KANA.findall(head)) >= 0.05 * total:
        return "ja"
    if len(_HAN.findall(head)) >= 0.2 * total:
        return "zh"
    if len(_HANGUL.findall(head)) >= 0.2 * total:
        return "ko"
    if len(_CYRILLIC.findall(head)) >= 0.3 * total:
        return "ru"
    words = [w.lower() for w in _LATIN_WORD.findall(head, 0, 1200)]
    best, best_hits = "en", 1
    for lang, hints in _HINTS.items():
        hits = sum(1 for w in words if w in hints)
        if hits > best_hits:
            best, best_hits = lang, hits
    return best


# ----------------------------------------------------------------------------
# splitting


def split_sentences(text: str, lang: str = "en", line_breaks: str = "auto") -> list[str]:
    """Split cleaned document text into sentences.

    Args:
        text: a document; paragraphs separated by a blank line.
        lang: ISO 639-1 code ("en", "de", "zh", "ja", ...), or "auto" to guess
            it from the text. Unknown codes get language-neutral rules.
        line_breaks: what a single line break inside a paragraph means.
            "sentence": always a boundary (one sentence per line, as in
            google-research/bert's input files). "space": plain whitespace
            (hard-wrapped text). "auto": a boundary unless the line visibly
            continues (no sentence-final punctuation before it and a lowercase
            letter or continuation character after it). A blank line is
            always a boundary.

    Returns:
        The sentences in order, stripped, none empty; line breaks inside a
        sentence become single spaces. Joining them gives back all the
        non-space characters of `text`.
    """
    if line_breaks not in LINE_BREAK_MODES:
        raise ValueError(f"line_breaks must be one of {LINE_BREAK_MODES}, got {line_breaks!r}")
    if not text or text.isspace():
        return []
    code = _normalise_lang(lang)
    if code == "auto":
        code = guess_language(text)
    rules = _rules_for(code)
    cuts, joined = _find_cuts(text, rules, line_breaks)
    cuts.append(len(text))
    sentences = []
    start = 0
    for cut in cuts:
        piece = text[start:cut].strip()
        if piece:
            # Only a line break that was not taken as a boundary can sit inside a sentence.
            sentences.append(_INNER_BREAKS.sub(" ", piece) if joined and _HAS_BREAK.search(piece) else piece)
        start = cut
    return sentences


def _find_cuts(text: str, rules: _Rules, line_breaks: str) -> tuple[list[int], bool]:
    """Cut positions in ascending order, and whether any line break was left uncut."""
    cuts: list[int] = []
    joined = False
    last = 0  # position of the latest cut: the current sentence starts here
    held = -1  # end of the latest stop that was judged not to end a sentence
    marker: tuple[str, int, int] | None = None  # (style, value, end) of the latest list marker
    size = len(text)
    for m in _CANDIDATE.finditer(text):
        kind = m.lastgroup
        s = m.start()
        e = m.end()
        cut = -1
        if kind == "c":
            stop = text[s : m.end("t")]
            window = text[max(last, s - 64) : s]
            prev = "" if not window or window[-1].isspace() else window.rsplit(None, 1)[-1]
            nxt = _NEXT_TOKEN.match(text, e).group(1)
            if not prev.isascii():
                # "米尔斯（C. Wright": the word starts after the last CJK character.
                prev = _TOKEN_TAIL.search(prev).group()
            core = prev.lstrip(_OPENERS + _BULLETS)
            # "1. First item 2. Second item": a number or letter marker opens a
            # sentence; a marker continuing the sequence opens a new one.
            numeral = core.isascii() and core.isdigit()
            if stop == "." and nxt and 0 < len(core) <= 2 and (numeral or (len(core) == 1 and core.isalpha())):
                token_start = s - len(core)
                style = "." if numeral else ".a"
                value = int(core) if numeral else ord(core.lower()[0])
                if _only_space_between(text, last, token_start):
                    marker = (style, value, e)
                    held = e
                    continue
                if (
                    marker is not None
                    and marker[0] == style
                    and marker[1] + 1 == value
                    and not _only_space_between(text, marker[2], s - len(prev))
                ):
                    marker = (style, value, e)
                    cut = s - len(prev)
                    if cut > last:
                        cuts.append(cut)
                        last = cut
                    held = e
                    continue
            cut = _judge_stop(text, rules, stop, m.group("c"), prev, core, nxt, s, e, last)
            if cut < 0:
                held = e
        elif kind == "kc":
            cut = _judge_cjk_stop(text, rules, m.group("kc"), s, e, last, size)
        elif kind == "n":
            paragraph = _is_paragraph_break(text[s:e]) if e - s > 1 else text[s] in "\u2029\x0c"
            if line_breaks == "sentence" or paragraph:
                cut = s
            elif line_breaks == "space":
                cut = -1
            else:
                cut = _judge_line_break(text, s, e, last, held)
            if cut < 0:
                joined = True
        elif kind == "b":
            if s == 0 or text[s - 1].isspace():
                cut = s
        elif kind == "m":
            # "1) First item 2) Second item", found from its closing bracket
            paren = _LIST_PAREN.search(text, max(last, s - 4), e)
            if paren is not None:
                style = ".)" if paren.group(2) else ")"
                value = int(paren.group(1))
                s = paren.start()
                if _only_space_between(text, last, s):
                    marker = (style, value, e)
                elif (
                    marker is not None
                    and marker[0] == style
                    and marker[1] + 1 == value
                    and not _only_space_between(text, marker[2], s)
                ):
                    marker = (style, value, e)
                    cut = s
        else:  # emoticon: ends a sentence unless a lowercase word goes on (web text: even then)
            if s == 0 or text[s - 1].isspace():
                nxt = _NEXT_TOKEN.match(text, e).group(1)
                if rules.lowercase_starts or not nxt[:1].islower():
                    cut = e
        if cut > last:
            cuts.append(cut)
            last = cut
    return cuts, joined


def _is_paragraph_break(gap: str) -> bool:
    return len(_LINE_BREAKS.findall(gap)) > 1 or "\u2029" in gap or "\x0c" in gap


def _judge_line_break(text: str, s: int, e: int, last: int, held: int) -> int:
    """Auto mode: a single line break is a boundary unless the line visibly continues."""
    window = text[max(last, s - 80) : s]
    before = window.rstrip()
    if not before:
        return -1
    ends_at = s - (len(window) - len(before))
    if before.rstrip(_CLOSERS)[-1:] in _LINE_FINAL:
        # A stop already judged non-final ("Mr.", "e.g.") continues over the break.
        return -1 if held == ends_at else s
    following = text[e : e + 1]
    if following.islower() or following in _CONTINUATION:
        return -1
    return s


def _judge_cjk_stop(text: str, rules: _Rules, closers: str, s: int, e: int, last: int, size: int) -> int:
    if e >= size:
        return e
    following = text[e]
    # "。」。", "！……" or "？」、「": the sentence goes on, or a later stop ends it.
    if following in _CJK_AFTER_STOP:
        return -1
    if closers and text.startswith(rules.quote_particles, e):
        return -1
    # Stops inside a title 《你好！李焕英》 belong to the title.
    lo = max(last, s - 100)
    if text.rfind("《", lo, s) > text.rfind("》", lo, s):
        return -1
    return e


def _classify(core: str, rules: _Rules) -> int:
    kind = rules.folded.get(core.lower()) or rules.exact.get(core)
    if kind:
        return kind
    if len(core) == 1 and core.isalpha():
        return _INITIAL
    if rules.suffixes and core.lower().endswith(rules.suffixes):
        return AMBIGUOUS
    bare = core.rstrip(_CLOSERS)
    if bare and (bare[0].isdigit() or (bare[0] in "$€£¥#+-±~" and bare[1:2].isdigit())):
        if not any(ch.isalpha() for ch in bare):
            return _NUMBER
    if "." in core and "@" not in core and "/" not in core:
        m = _ACRONYM.fullmatch(core)
        if m is not None and m.group(1).lower() not in _DOMAINS:
            return _ACRONYM_CLASS
    return _WORDLIKE


def _starts_sentence(word: str, rules: _Rules) -> bool:
    m = _WORD.match(word)
    if m is None or (m.end() == 1 and word[1:2] == "."):
        return False  # an initial ("H. A. Simon") opens no sentence
    return m.group().lower() in rules.starters


def _judge_stop(
    text: str,
    rules: _Rules,
    stop: str,
    closers: str,
    prev: str,
    core: str,
    nxt: str,
    s: int,
    e: int,
    last: int,
) -> int:
    """Where a Latin-style stop cuts the text, or -1 when it does not end a sentence."""
    if not nxt:
        return e
    head = nxt.lstrip(_OPENERS)
    first = head[:1]
    lower = first.islower()
    if (
        first in (",", ";", ":")
        or (nxt[0] in ":;=^<" and _EMOTICON.fullmatch(nxt))
        or head.startswith(rules.quote_particles)
    ):
        # ", 2000 Carr" is no sentence; "great! :)" keeps its emoticon.
        return -1

    if "!" in stop or "?" in stop or "‽" in stop or "؟" in stop or "।" in stop:
        if lower:
            # '"Stop!" she said' continues; 'Yahoo! in' continues.
            if closers or not rules.lowercase_starts or core.lower() in split_rules.BANG_WORDS:
                return -1
        return e

    if stop != ".":
        dots = stop.count(".") + 3 * stop.count("…")
        # "[...]" marks an omission inside a quotation, never a stop.
        if s and text[s - 1] in "[(":
            return -1
        if lower:
            return -1
        # "compounds. . . . The": the period ends the sentence and the
        # ellipsis opens the next one.
        if prev and stop.startswith(". ") and dots >= 4 and first:
            return s + 1
        # A pause before "I" is read as mid-sentence ("the thing is . . . I didn't").
        if dots <= 3:
            word = _WORD.match(head)
            if word is not None and word.group() == "I":
                return -1
        return e

    if closers:
        # The stop sits inside a quote or bracket: a lowercase word after it
        # continues the sentence ('"This is great." she said').
        return -1 if lower else e

    cls = _classify(core, rules) if core else _WORDLIKE
    digit = first.isdigit()
    if cls == TITLE or cls == ALWAYS:
        return -1
    if cls == NUMERIC:
        if digit or first in "#№" or _ROMAN.match(head):
            return -1
        # "с. 5" is a page but "А. С. Пушкин" an initial
        cls = _INITIAL if len(core) == 1 else _WORDLIKE
    if cls == AMBIGUOUS or cls == _ACRONYM_CLASS or cls == _INITIAL:
        if lower or digit or not first.isalpha():
            return -1
        if not _starts_sentence(head, rules):
            return -1
        key = core.lower()
        if key in ("a.m", "p.m", "am", "pm") and _fronted_time(text, last, s):
            return -1
        return e
    if cls == _NUMBER:
        if lower:
            return e if rules.lowercase_starts and _starts_sentence(head, rules) else -1
        if rules.ordinal_dot and core.isdigit() and len(core) <= 2 and not _starts_sentence(head, rules):
            return -1
        return e
    # an ordinary word
    if lower:
        if not rules.lowercase_starts:
            return -1
        if len(core) <= 3 and core.isalpha():
            if not any(ch in _VOWELS for ch in core):
                return -1  # probably an unlisted abbreviation ("pls.", "wrt.")
            before = text[max(last, s - len(prev) - 24) : s - len(prev)].split()
            if before and before[-1][:1].isdigit():
                return -1  # a unit after a number ("12 in. by 4 ft.")
        return e
    return e


_TIME_PREPOSITIONS = frozenset("at by before after until around about from since".split())


def _fronted_time(text: str, last: int, s: int) -> bool:
    """True for a sentence opening with a time phrase: "At 5 a.m. Mr. Smith left"."""
    words = text[max(last, s - 40) : s].split()
    return s - last <= 40 and len(words) <= 4 and words[0].lower() in _TIME_PREPOSITIONS


def _only_space_between(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] holds nothing but whitespace and bullets (looked at
    only near `start`, so a long sentence costs no more than a short one)."""
    return end - start <= 64 and not text[start:end].strip(_SPACE_AND_BULLETS)
