"""The Unicode ranges of the CJK scripts, defined once: the sentence splitter, the quality filters and
near-duplicate detection all read them from here.

Each constant is the inside of a regular-expression character class (``re.compile(f"[{HAN}]")``), for
the standard ``re`` module and for ``regex`` alike. What this module leaves to its users: which set a
rule needs. Words of Chinese and Japanese are not separated by spaces, so the word-based rules
(quality filters, near-duplicate shingles) take each character of ``UNSPACED`` as a word; Korean puts
spaces between words, so Hangul counts there as ordinary letters, while the splitter's CJK
punctuation rules (``CJK``) apply to all three scripts.
"""

from __future__ import annotations

__all__ = ["CJK", "HAN", "HANGUL", "KANA", "UNSPACED"]

# CJK Unified Ideographs Extension A, the Unified Ideographs, the Compatibility Ideographs, and
# plane 2 (Extensions B-F and the Compatibility Ideographs Supplement).
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# Hiragana and Katakana, and the half-width Katakana of the Halfwidth and Fullwidth Forms block.
KANA = "\u3040-\u30ff\uff66-\uff9f"
# Hangul Syllables.
HANGUL = "\uac00-\ud7af"

# Scripts written without spaces between words (Chinese, Japanese): each character is a word.
UNSPACED = HAN + KANA
# Every CJK script: where CJK sentence punctuation applies and no space follows a stop.
CJK = HAN + KANA + HANGUL
