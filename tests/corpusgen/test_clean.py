from corpusgen.clean import clean_text, content_key


def test_whitespace_and_paragraphs():
    raw = "  The  cat\u00a0sat. \r\n\r\n\r\n\r\n  On the\tmat.  \n second line \n\n\n"
    assert clean_text(raw) == "The cat sat.\n\nOn the mat.\nsecond line"


def test_control_and_invisible_characters_removed():
    assert clean_text("a\x00b\x07c\u200bd\ufeffe\u00adf") == "abcdef"
    # the zero-width joiner holds emoji sequences together and stays
    assert clean_text("👩\u200d💻 ok") == "👩\u200d💻 ok"


def test_unicode_forms():
    decomposed = "Cafe\u0301"
    assert clean_text(decomposed) == "Café"
    assert clean_text("ﬁne", "NFKC") == "fine"
    assert clean_text("ﬁne", "NFC") == "ﬁne"
    assert clean_text(decomposed, "none") == decomposed


def test_line_and_paragraph_separators():
    assert clean_text("one\u2028two\u2029three") == "one\ntwo\n\nthree"


def test_content_key_ignores_case_and_spacing_only():
    assert content_key("Hello  World.\n\nBye") == content_key("hello world. bye")
    assert content_key("Hello World.") != content_key("Hello World!")
    assert len(content_key("x")) == 32


# --- clean_document: the cleaning order and its counts ------------------------------------------

from collections import Counter  # noqa: E402

from corpusgen import stats  # noqa: E402
from corpusgen.clean import clean_document  # noqa: E402
from corpusgen.config import BuildConfig  # noqa: E402

PAGE = (
    "<!doctype html><html><head><title>T</title><script>var x = 1;</script></head><body>"
    "<nav><a href='/'>Home</a> <a href='/a'>About</a></nav>"
    "<p>Le caf\u00c3\u00a9 est ouvert.</p><p>Second  paragraph\u00a0here.</p></body></html>"
)


def test_html_then_mojibake_then_normalisation():
    counts = Counter()
    assert clean_document(PAGE, BuildConfig(), counts) == ("Le café est ouvert.\n\nSecond paragraph here.", None)
    assert counts == Counter({stats.HTML_DOCUMENTS: 1, stats.MOJIBAKE_FIXED_DOCUMENTS: 1, stats.DOCUMENTS_CLEANED: 1})


def test_each_step_follows_the_config():
    counts = Counter()
    text, _ = clean_document(PAGE, BuildConfig(html="never", fix_mojibake=False), counts)
    assert text.startswith("<!doctype html>") and "caf\u00c3\u00a9" in text
    assert counts == Counter({stats.DOCUMENTS_CLEANED: 1})
    assert clean_document("ﬁne", BuildConfig(unicode_form="NFKC"), Counter()) == ("fine", None)
    assert clean_document("   \n ", BuildConfig(), Counter()) == (None, stats.EMPTY_DOCUMENT)
    assert clean_document("short", BuildConfig(min_document_chars=10), Counter()) == (None, stats.EMPTY_DOCUMENT)


def test_boilerplate_lines_after_normalisation():
    from corpusgen.quality import QualityConfig

    counts = Counter()
    text, reason = clean_document(
        "A real paragraph of the article.\nAll rights reserved.", BuildConfig(quality=QualityConfig()), counts
    )
    assert (text, reason) == ("A real paragraph of the article.", None)
    assert counts[stats.BOILERPLATE_LINES_REMOVED] == 1


def test_a_failure_on_one_document_is_its_drop(monkeypatch):
    import corpusgen.clean

    def broken(text, form="NFC"):
        raise RuntimeError("a bug")

    monkeypatch.setattr(corpusgen.clean, "clean_text", broken)
    assert clean_document("Any text.", BuildConfig(), Counter()) == (None, stats.DOCUMENT_ERROR)


def test_rewriting_only_the_runs_of_special_characters_equals_translating_the_whole_text():
    import random

    from corpusgen import clean

    special = [chr(c) for c in clean._TABLE]
    rng = random.Random(5)
    for _ in range(2000):
        text = "".join(
            rng.choice(special) if rng.random() < 0.3 else rng.choice("ab c\n\u00e9\u4e2d")
            for _ in range(rng.randrange(30))
        )
        assert clean._NEEDS_TRANSLATE.sub(clean._translate_run, text) == text.translate(clean._TABLE)
