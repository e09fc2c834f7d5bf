"""Clean one document: the cleaning order, its counts, and the text normalisation itself.

``clean_document`` is the one place that decides how a read document becomes the text the
build tokenizes (and ``corpusgen vocab`` learns from): HTML to visible text → mojibake repair →
Unicode form, controls and whitespace (``clean_text``) → boilerplate lines → minimum length.
``clean_text`` keeps the document's layout that later steps read: paragraphs are separated by
one blank line, lines inside a paragraph by one ``\\n``. It never changes the words themselves
beyond the chosen Unicode normalisation. HTML parsing, mojibake repair and the boilerplate
rules are ``corpusgen.html``'s, ``corpusgen.encoding``'s and ``corpusgen.quality``'s.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING

from corpusgen.stats import (
    BOILERPLATE_LINES_REMOVED,
    DOCUMENT_ERROR,
    DOCUMENTS_CLEANED,
    EMPTY_DOCUMENT,
    HTML_DOCUMENTS,
    HTML_TOO_DEEP,
    INVALID_UNICODE,
    MOJIBAKE_FIXED_DOCUMENTS,
)

if TYPE_CHECKING:
    from corpusgen.config import BuildConfig

log = logging.getLogger("corpusgen")

# Characters deleted outright: C0/C1 controls other than tab/newline, zero-width
# spaces, byte-order marks, soft hyphens and bidi controls. The zero-width joiner
# (U+200D) stays: emoji and Indic conjuncts need it.
_DELETE = [c for c in range(0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0))
_DELETE += [0x00AD, 0x200B, 0x200C, 0x200E, 0x200F, 0x2060, 0xFEFF, 0xFFFE, 0xFFFF]
_DELETE += list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A))
# Horizontal space of every kind becomes an ASCII space; line/paragraph separators a newline.
_SPACES = [0x09, 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x202F, 0x205F, 0x3000] + list(range(0x2000, 0x200B))
_TABLE = {c: None for c in _DELETE}
_TABLE.update({c: " " for c in _SPACES})
_TABLE.update({0x2028: "\n", 0x2029: "\n\n", 0x0D: "\n"})

_NEEDS_TRANSLATE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_TABLE)) + "]+")
_REPLACEMENT = {chr(c): r or "" for c, r in _TABLE.items()}


def _translate_run(match: re.Match) -> str:
    return "".join(map(_REPLACEMENT.__getitem__, match.group()))


_SPACE_RUN = re.compile(r" {2,}")
_EDGE_SPACE = re.compile(r" +\n *|\n +")
_BLANK_RUN = re.compile(r"\n{3,}")


def clean_text(text: str, unicode_form: str = "NFC") -> str:
    """Normalised text with single spaces, trimmed lines and at most one blank line in a row."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if unicode_form != "none" and not text.isascii():
        text = unicodedata.normalize(unicode_form, text)
    # Only the runs of such characters are rewritten: they are rare, and str.translate costs ~40 ns
    # for every character of the text (6x the time on Wikipedia, where 4% of articles hold one).
    text = _NEEDS_TRANSLATE.sub(_translate_run, text)
    # Each rewrite only where its pattern occurs: a substring test is far cheaper than a regex pass.
    if "  " in text:
        text = _SPACE_RUN.sub(" ", text)
    if " \n" in text or "\n " in text:
        text = _EDGE_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_RUN.sub("\n\n", text)
    return text.strip()


def content_key(text: str) -> str:
    """Stable 128-bit key of a document's normalised content (case and spacing ignored).

    Two documents with the same key are exact duplicates; the key also seeds every
    random choice made for the document, so results do not depend on file names,
    input order or worker count.
    """
    norm = " ".join(text.lower().split())
    return hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_document(text: str, cfg: BuildConfig, counts: Counter, source: str = "") -> tuple[str | None, str | None]:
    """``(cleaned text, None)``, or ``(None, drop reason)``; what each step changed is counted.

    The drop itself (``counts[reason]``) is the caller's to count, since the pipeline also
    writes the dropped document out when asked to. An unexpected failure on one document is
    its drop (``document_error``), logged with ``source`` and the document's start, never fatal.
    """
    try:
        return _clean_document(text, cfg, counts)
    except Exception as exc:  # noqa: BLE001 - one bad document must not stop a build
        log.warning("%s: cleaning failed (%s: %s) on %r", source or "document", type(exc).__name__, exc, text[:80],
                    exc_info=True)  # fmt: skip
        return None, DOCUMENT_ERROR


def _clean_document(text: str, cfg: BuildConfig, counts: Counter) -> tuple[str | None, str | None]:
    if cfg.html != "never":
        from corpusgen.html import html_to_text, looks_like_html, nested_too_deep

        if cfg.html == "always" or looks_like_html(text):
            counts[HTML_DOCUMENTS] += 1
            if nested_too_deep(text):
                return None, HTML_TOO_DEEP
            text = html_to_text(text)
    if cfg.fix_mojibake:
        from corpusgen.encoding import fix_mojibake, might_be_mojibake

        if might_be_mojibake(text):
            fixed = fix_mojibake(text)
            if fixed != text:
                counts[MOJIBAKE_FIXED_DOCUMENTS] += 1
                text = fixed
    if _SURROGATE.search(text):  # readers refuse them; a character reference in HTML could still make one
        return None, INVALID_UNICODE
    text = clean_text(text, cfg.unicode_form)
    if cfg.quality is not None and cfg.quality.strip_boilerplate:
        from corpusgen.quality import strip_boilerplate_lines

        text, removed = strip_boilerplate_lines(text, cfg.quality)
        if removed:
            counts[BOILERPLATE_LINES_REMOVED] += removed
    if len(text) < cfg.min_document_chars:
        return None, EMPTY_DOCUMENT
    counts[DOCUMENTS_CLEANED] += 1
    return text, None
