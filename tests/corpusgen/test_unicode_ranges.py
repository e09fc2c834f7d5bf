"""corpusgen.unicode_ranges: the CJK ranges at their boundaries, and the three modules that read them."""

from __future__ import annotations

import re

import pytest

from corpusgen import neardup, quality, unicode_ranges
from corpusgen.split import guess_language, split_sentences

# (first, last) code point of every block, and the code points just outside them
HAN_BLOCKS = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F)]
KANA_BLOCKS = [(0x3040, 0x30FF), (0xFF66, 0xFF9F)]
HANGUL_BLOCKS = [(0xAC00, 0xD7AF)]


def members(ranges: str, code_points) -> list[bool]:
    pattern = re.compile(f"[{ranges}]")
    return [pattern.fullmatch(chr(c)) is not None for c in code_points]


@pytest.mark.parametrize(
    "name, blocks",
    [
        ("HAN", HAN_BLOCKS),
        ("KANA", KANA_BLOCKS),
        ("HANGUL", HANGUL_BLOCKS),
        ("UNSPACED", HAN_BLOCKS + KANA_BLOCKS),
        ("CJK", HAN_BLOCKS + KANA_BLOCKS + HANGUL_BLOCKS),
    ],
)
def test_ranges_at_their_boundaries(name, blocks):
    ranges = getattr(unicode_ranges, name)
    inside = [c for first, last in blocks for c in (first, first + 1, last - 1, last)]
    assert members(ranges, inside) == [True] * len(inside)
    edges = {c for first, last in blocks for c in (first - 1, last + 1)}
    outside = sorted(edges - {c for first, last in blocks for c in range(first, last + 1)})
    assert members(ranges, outside) == [False] * len(outside)
    # nothing else: ASCII, Latin-1, CJK punctuation (U+3000-303F), full-width ASCII (U+FF01-FF5E), plane 3
    others = [0x41, 0x7A, 0xE9, 0x3000, 0x3002, 0x303F, 0xFF01, 0xFF0C, 0xFF5E, 0x30000]
    assert members(ranges, others) == [False] * len(others)


def test_the_three_users_share_one_definition():
    # The splitter knows all three scripts; word rules treat Han and Kana, not Hangul, as one word a character.
    assert re.fullmatch(f"[{unicode_ranges.CJK}]+", "漢かカｶ한𠀀") is not None
    assert re.fullmatch(f"[{unicode_ranges.UNSPACED}]+", "漢かカｶ𠀀") is not None
    assert re.search(f"[{unicode_ranges.UNSPACED}]", "한국어") is None


def test_near_duplicate_words():
    assert len(neardup.shingle_hashes("図書館", ngram=2)) == 2
    assert len(neardup.shingle_hashes("ｶﾀｶﾅ", ngram=2)) == 3  # half-width Katakana: a word a character
    assert len(neardup.shingle_hashes("𠀀𠀁𠀂", ngram=2)) == 2  # plane-2 Han too
    assert len(neardup.shingle_hashes("한국어 문장 입니다", ngram=2)) == 2  # Korean: words between spaces


def only_min_words(n: int) -> quality.QualityConfig:
    """Every rule off but the minimum word count."""
    rules = (
        "max_words min_sentences min_mean_word_length max_mean_word_length max_symbol_to_word_ratio "
        "max_bullet_lines max_ellipsis_lines min_alpha_words min_stop_words max_repeated_lines "
        "max_repeated_line_chars max_repeated_paragraphs max_repeated_paragraph_chars max_top_ngram_chars "
        "max_dup_ngram_chars"
    ).split()
    return quality.QualityConfig(min_words=n, drop_lorem_ipsum=False, **dict.fromkeys(rules))


@pytest.mark.parametrize(
    "text, words",
    [("ｶﾀｶﾅ", 4), ("𠀀𠀁𠀂", 3), ("図書館で本", 5), ("한국어 문장 입니다", 3), ("ひらがな and English", 6)],
)
def test_quality_word_count(text, words):
    assert quality.check_document(text, cfg=only_min_words(words)) is None
    assert quality.check_document(text, cfg=only_min_words(words + 1)) == quality.TOO_SHORT


def test_splitter_and_language_guess():
    assert split_sentences("中文!中文", "zh") == ["中文!", "中文"]
    assert split_sentences("𠀀𠀁!𠀂𠀃", "zh") == ["𠀀𠀁!", "𠀂𠀃"]
    assert split_sentences("안녕!잘가", "ko") == ["안녕!", "잘가"]
    assert guess_language("ｶﾀｶﾅﾃﾞｽ" * 20) == "ja"
    assert guess_language("𠀀𠀁𠀂" * 30) == "zh"
    assert guess_language("한국어 문장" * 10) == "ko"
