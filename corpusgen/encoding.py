"""Bytes to text: legacy encodings decoded by declaration or detection, never silently lossy.

Order of evidence in :func:`decode_bytes` (strongest first):

1. a byte-order mark (UTF-8, UTF-16, UTF-32);
2. strict UTF-8 (by far the most common case, and valid non-ASCII UTF-8 is almost never an accident);
3. UTF-16/32 without a BOM, recognised by where the NUL bytes fall;
4. binary content (magic numbers, NUL or control bytes) is refused;
5. the caller's ``declared`` encoding (``--encoding``, an HTTP header, a WARC record);
6. an HTML ``<meta charset>`` or XML ``encoding=`` declaration in the first bytes;
7. statistical detection with charset-normalizer, re-ranked by how common an encoding is on the web.

Every decode is strict: if no step can decode the bytes without errors, :class:`DecodeError` is raised
with a snake_case reason, so the caller can count the document instead of training on U+FFFD.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer
import ftfy

# Drop reasons (snake_case constants the pipeline counts).
BINARY = "binary"
UNDECODABLE = "undecodable"

__all__ = [
    "BINARY",
    "BOMS",
    "UNDECODABLE",
    "DecodeError",
    "decode_bytes",
    "fix_mojibake",
    "looks_binary",
    "normalize_encoding",
    "sniff_declared_encoding",
    "sniff_unicode",
    "sniff_utf16_32",
]


class DecodeError(ValueError):
    """The bytes cannot be decoded confidently; ``reason`` is a snake_case drop reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# Byte-order marks and their codecs.
BOMS = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_MAGIC = (
    b"%PDF-",
    b"PK\x03\x04",
    b"\x89PNG",
    b"GIF87a",
    b"GIF89a",
    b"\xff\xd8\xff",
    b"\x1f\x8b",
    b"BZh",
    b"\x28\xb5\x2f\xfd",
    b"\xfd7zXZ\x00",
    b"\x7fELF",
    b"MZ",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"\x00\x00\x01\x00",
    b"wOFF",
    b"wOF2",
    b"\xd0\xcf\x11\xe0",  # OLE2: .doc/.xls
)

# C0 controls other than the whitespace ones, plus DEL. ESC (0x1b) is left out: ISO-2022 text uses it.
_CONTROL_BYTES = bytes([*range(0x00, 0x08), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_BINARY_CONTROL_SHARE = 0.05
_HEAD = 4096
_BINARY_PROBE = 1 << 16
_ISO2022 = ("iso2022_kr", "iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext")

# WHATWG maps these labels to supersets, and pages labelled with them routinely use the extra
# characters (curly quotes in "ISO-8859-1", NEC symbols in "Shift_JIS"), so decode with the superset.
_SUPERSET = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
_C1_SUPERSETS = frozenset({"cp1252", "cp1254", "cp874"})
_ALIASES = {
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "iso-8859-8-i": "iso8859-8",
    "x-cp1250": "cp1250",
    "x-cp1251": "cp1251",
    "x-euc-jp": "euc_jp",
    "x-gbk": "gbk",
}

# Share of the web by encoding, most common first (W3Techs order, rounded). Used only to break
# near-ties between detector candidates: with no other evidence, the common encoding is the likely one.
_POPULARITY = [
    "utf-8",
    "ascii",
    "cp1252",
    "cp1251",
    "gb18030",
    "gb2312",
    "gbk",
    "cp932",
    "shift_jis",
    "cp949",
    "euc_kr",
    "euc_jp",
    "iso8859-2",
    "cp1250",
    "big5",
    "big5hkscs",
    "cp1256",
    "cp1254",
    "iso8859-9",
    "cp874",
    "tis-620",
    "koi8-r",
    "iso8859-15",
    "cp1255",
    "iso8859-7",
    "cp1253",
    "cp1257",
    "iso8859-5",
    "cp1258",
    "koi8-u",
    "iso8859-8",
    "iso8859-6",
    "iso8859-13",
    "iso2022_jp",
    "iso2022_kr",
    "euc_jis_2004",
    "mac-roman",
    "mac-cyrillic",
    "cp866",
    "cp855",
    "johab",
]
_RANK = {name: i for i, name in enumerate(_POPULARITY)}

_CENTRAL_EUROPEAN = frozenset({"cp1250", "iso8859-2", "mac-latin2"})
_CYRILLIC = frozenset({"cp1251", "koi8-r", "koi8-u", "iso8859-5", "cp866", "cp855", "mac-cyrillic", "cp1125"})
_WESTERN = frozenset({"cp1252", "iso8859-1", "iso8859-15", "mac-roman"})
# Encodings a language is normally written in (language names as charset-normalizer reports them).
_NATIVE = (
    (
        {"Czech", "Slovak", "Polish", "Hungarian", "Croatian", "Slovene", "Bosnian", "Serbian", "Romanian"},
        _CENTRAL_EUROPEAN | {"iso8859-16"},
    ),
    ({"Russian", "Bulgarian", "Ukrainian", "Belarusian", "Macedonian", "Kazakh", "Serbian"}, _CYRILLIC),
    ({"Turkish", "Azerbaijani"}, frozenset({"cp1254", "iso8859-9"})),
    ({"Greek"}, frozenset({"cp1253", "iso8859-7"})),
    ({"Hebrew"}, frozenset({"cp1255", "iso8859-8"})),
    ({"Arabic", "Farsi", "Persian", "Urdu"}, frozenset({"cp1256", "iso8859-6"})),
    ({"Lithuanian", "Latvian", "Estonian"}, frozenset({"cp1257", "iso8859-13", "iso8859-4"})),
    ({"Vietnamese"}, frozenset({"cp1258"})),
    ({"Thai"}, frozenset({"cp874", "tis-620"})),
    (
        {
            "English",
            "French",
            "German",
            "Spanish",
            "Portuguese",
            "Italian",
            "Dutch",
            "Danish",
            "Swedish",
            "Norwegian",
            "Finnish",
            "Catalan",
            "Indonesian",
            "Malay",
            "Icelandic",
            "Galician",
            "Basque",
        },
        _WESTERN,
    ),
)

# Detector candidates this close to the best one count as a tie.
_CHAOS_TIE = 0.02
_COHERENCE_TIE = 0.1
# Above this mess ratio the decoded text is mostly garbage in every candidate encoding.
_MAX_CHAOS = 0.2

_META_RE = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:()-]{1,40})""",
    re.IGNORECASE,
)
_XML_DECL_RE = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_.:-]{1,40})["']""", re.IGNORECASE)


def normalize_encoding(name: str) -> str:
    """Python's canonical codec name for an encoding label; ``ValueError`` names the bad label.

    For validating a user's ``--encoding`` before any work starts.
    """
    label = name.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        raise ValueError(
            f"unknown encoding {name!r}: use a Python codec name such as 'cp1252' or 'shift_jis'"
        ) from None
    # base64, hex, zlib, rot13 …: byte-to-byte transforms, not encodings of text; punycode and idna
    # encode domain names
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_DOCUMENT_CODECS:
        raise ValueError(
            f"--encoding {name}: {info.name} is no encoding of text files; use a text encoding such as "
            "'utf-8', 'cp1252' or 'shift_jis' (decompress or decode such files first)"
        )
    return info.name


_NOT_DOCUMENT_CODECS = frozenset({"punycode", "idna"})


def sniff_utf16_32(head: bytes) -> str | None:
    """UTF-16/32 without a BOM: text in those encodings puts NULs at fixed offsets (the high bytes of
    Latin, digits and punctuation), something neither binary files nor 8-bit text do."""
    n = len(head) - len(head) % 4
    if n < 16:
        return None
    head = head[:n]
    zeros = [head[i::4].count(0) / (n // 4) for i in range(4)]
    if zeros[2] > 0.9 and zeros[3] > 0.9 and zeros[0] < 0.5:
        return "utf-32-le"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[3] < 0.5:
        return "utf-32-be"
    even = (zeros[0] + zeros[2]) / 2
    odd = (zeros[1] + zeros[3]) / 2
    if odd > 0.4 and even < 0.05:
        return "utf-16-le"
    if even > 0.4 and odd < 0.05:
        return "utf-16-be"
    return None


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file look like binary data rather than text in some encoding.

    Decided on evidence real text cannot show: a known magic number, or more than 5% NUL/control bytes
    in the first 64 KiB. A stray NUL in text (a damaged record) is not such evidence: the reader drops
    that record instead. UTF-16/32 text (with or without a BOM) is text, not binary.
    """
    head = head[:_BINARY_PROBE]
    if not head:
        return False
    if any(head.startswith(bom) for bom, _ in BOMS):
        return False
    if head.startswith(_MAGIC):
        return True
    if b"\x00" in head and sniff_utf16_32(head) is not None:
        return False
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls / len(head) > _BINARY_CONTROL_SHARE


def sniff_unicode(head: bytes) -> tuple[str, int] | None:
    """``(codec, BOM length)`` when a BOM or the NUL pattern of UTF-16/32 identifies the encoding."""
    for bom, codec in BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    codec = sniff_utf16_32(head[:_HEAD]) if b"\x00" in head[:_HEAD] else None
    return (codec, 0) if codec else None


def _codecs_for_label(label: bytes | str) -> tuple[str, ...]:
    """Python codecs to try, in order, for a declared label; empty when the label is unusable."""
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        name = normalize_encoding(label)
    except ValueError:
        return ()
    # A document that declares UTF-16/32 inside ASCII-compatible bytes is mistaken (browsers ignore
    # it too): real UTF-16/32 was already recognised by its BOM or NUL pattern.
    if name.startswith(("utf-16", "utf-32")):
        return ()
    wider = _SUPERSET.get(name)
    if wider is None:
        return (name,)
    # The ISO label's C1 range is never meant literally (it holds curly quotes and dashes), so the
    # Windows superset goes first; the CJK supersets change a few mappings, so they are a fallback.
    return (wider, name) if wider in _C1_SUPERSETS else (name, wider)


def sniff_declared_encoding(data: bytes) -> str | None:
    """The encoding an HTML ``<meta>`` or XML declaration names in the first 4 KiB, as a codec name."""
    head = data[:_HEAD]
    m = _XML_DECL_RE.search(head) or _META_RE.search(head)
    codecs_ = _codecs_for_label(m.group(1)) if m else ()
    return codecs_[0] if codecs_ else None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _native_codecs(language: str) -> frozenset[str]:
    for languages, codecs_ in _NATIVE:
        if language in languages:
            return codecs_
    return frozenset()


def _detect(data: bytes) -> tuple[str, str]:
    # threshold=0.5 keeps near-miss candidates in the list so the tie-break below can see them;
    # _MAX_CHAOS is the real acceptance bar.
    matches = list(charset_normalizer.from_bytes(data, threshold=0.5))
    if not matches:
        raise DecodeError(UNDECODABLE, "no candidate encoding decodes these bytes")
    best = matches[0]
    if best.chaos > _MAX_CHAOS:
        raise DecodeError(UNDECODABLE, f"best guess {best.encoding} is too messy ({best.chaos:.2f})")
    # charset-normalizer's order among single-byte code pages that decode equally cleanly is close to
    # arbitrary (cp1250 for Portuguese, cp1252 for Turkish). Among those near-ties, prefer an encoding
    # that is native to the language the decoded text is in, then the one more common on the web.
    tied = [m for m in matches if m.chaos <= best.chaos + _CHAOS_TIE and m.coherence >= best.coherence - _COHERENCE_TIE]

    def rank(m: charset_normalizer.models.CharsetMatch) -> tuple[int, int, int]:
        names = {codecs.lookup(c).name for c in m.could_be_from_charset}
        native = _native_codecs(m.language)
        popularity = min(_RANK.get(n, len(_RANK)) for n in names)
        return (0 if names & native else 1, popularity, matches.index(m))

    chosen = min(tied, key=rank)
    name = codecs.lookup(chosen.encoding).name
    # cp1250 and ISO-8859-2 differ only in 0x80-0xBF; cp1250 puts š ž ś ź ť (frequent in every language
    # that uses either) at 0x8A-0x9F, so Central European text that never uses those bytes is ISO-8859-2.
    if name == "cp1250" and not any(0x80 <= b < 0xA0 for b in data):
        name = "iso8859-2"
    text = _strict(data, name)
    if text is None:  # the detector decodes chunk-wise; never trust it over a whole-input strict decode
        raise DecodeError(UNDECODABLE, f"{name} fails on the full input")
    return text, name


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode a document's bytes; returns ``(text, encoding)`` with a Python codec name.

    ``declared`` (a user's ``--encoding`` or a transport header) outranks in-document declarations and
    detection but not a BOM or valid UTF-8. A declared or in-document encoding that fails to decode
    strictly is ignored and the next evidence is tried. Raises :class:`DecodeError` with reason
    ``binary`` or ``undecodable``; never returns text with replacement characters the bytes did not
    contain.
    """
    if not data:
        return "", "utf-8"
    for bom, codec in BOMS:
        if data.startswith(bom):
            text = _strict(data, "utf-8-sig" if codec == "utf-8-sig" else codec)
            if text is None:
                raise DecodeError(UNDECODABLE, f"{codec} byte-order mark but invalid {codec}")
            return (text if codec == "utf-8-sig" else text.removeprefix("\ufeff")), codec
    head = data[:_HEAD]
    # Before UTF-8: NUL is valid UTF-8, so ASCII-range UTF-16/32 would otherwise pass as UTF-8.
    if b"\x00" in head:
        codec = sniff_utf16_32(head)
        if codec is None:
            raise DecodeError(BINARY, "NUL bytes")
        text = _strict(data, codec)
        if text is None:
            raise DecodeError(UNDECODABLE, f"looks like {codec} but does not decode")
        return text, codec
    text = _strict(data, "utf-8")
    if text is not None:
        # ISO-2022 is 7-bit, hence valid UTF-8; its escape sequences give it away.
        if b"\x1b$" in data and text.isascii():
            for codec in _ISO2022:
                decoded = _strict(data, codec)
                if decoded is not None:
                    return decoded, codec
        return text, "utf-8"
    if looks_binary(head):
        raise DecodeError(BINARY, "magic number or control bytes")
    m = _XML_DECL_RE.search(head) or _META_RE.search(head)
    candidates = (*(_codecs_for_label(declared) if declared else ()), *(_codecs_for_label(m.group(1)) if m else ()))
    for codec in candidates:
        text = _strict(data, codec)
        if text is not None:
            return text, codec
    return _detect(data)


_ASCII_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # HTML is parsed properly upstream; in plain text "&amp;" may be meant literally
    fix_latin_ligatures=False,
    fix_character_width=False,  # full-width forms are legitimate in CJK text
    uncurl_quotes=False,
    fix_line_breaks=False,
    # ftfy would otherwise put U+FFFD where mojibake lost bytes: a silent replacement this project refuses.
    replace_lossy_sequences=False,
    normalization="NFC",
    explain=False,
)


# The two-character shapes UTF-8 takes when read as Latin-1/cp1252: a lead byte (Â–ô) followed by a
# continuation byte shown as a C1 control, a Latin-1 symbol or a cp1252 punctuation character.
_MOJIBAKE_HINT_RE = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)


def might_be_mojibake(text: str) -> bool:
    """A cheap (regex) screen: False means ftfy would find nothing to fix in the usual mojibake."""
    return _MOJIBAKE_HINT_RE.search(text) is not None or _ASCII_CONTROL_RE.search(text) is not None


def fix_mojibake(text: str) -> str:
    """Repair mojibake (UTF-8 read as a legacy code page, C1 controls, terminal escapes) with ftfy.

    ftfy only changes text its heuristics find bad; correct text comes back unchanged except for NFC
    normalisation. Cheap for ASCII text.
    """
    # ASCII cannot hold mojibake; only control characters and terminal escapes need ftfy there.
    if text.isascii() and not _ASCII_CONTROL_RE.search(text):
        return text
    return ftfy.fix_text(text, _FTFY_CONFIG)
