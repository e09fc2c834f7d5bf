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
