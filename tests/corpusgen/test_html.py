import html as stdlib_html
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusgen.html import html_to_text, looks_like_html

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "web"


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", ["news_article", "blog_tables"])
def test_realistic_page_gives_exactly_its_visible_article_text(page):
    assert html_to_text(read(f"{page}.html")) == read(f"{page}.txt").rstrip("\n")


def test_news_page_leaves_no_markup_scripts_or_chrome():
    text = html_to_text(read("news_article.html"))
    for absent in (
        "<",
        ">",
        "&amp;",
        "&nbsp;",
        "dataLayer",  # script
        "font-family",  # style
        "ad slot",  # comment
        "cookies",  # cookie banner
        "Sport",  # nav
        "Home ›",  # breadcrumbs
        "Share on",  # share bar
        "Related stories",  # aside
        "morning briefing",  # newsletter box
        "Hidden tracking",  # display:none
        "Advertisement",  # aria-hidden
        "icon sprite",  # svg
        "All rights reserved",  # footer
        "Privacy policy",
    ):
        assert absent not in text, absent
    # Entities decoded, nbsp turned into a plain space, inline tags inside the paragraph.
    assert "£2.4 million" in text
    assert "Weir Lane & Ferry Row" in text
    assert "“three for one”" in text
    assert "almost ten years." in text


def test_blocks_become_paragraphs_and_br_a_line_break():
    page = "<div><p>First  paragraph\n spans lines.</p><p>Second one.<br>Same paragraph, new line.</p></div>"
    assert html_to_text(page) == "First paragraph spans lines.\n\nSecond one.\nSame paragraph, new line."


def test_list_items_and_table_rows_are_paragraphs_and_cells_tab_separated():
    page = (
        "<ul><li>Flour, 500 g</li><li>Water, 350 g</li></ul>"
        "<table><tr><th>Day</th><th>Rain (mm)</th></tr><tr><td>Monday</td><td>4.2</td></tr></table>"
    )
    assert html_to_text(page) == "Flour, 500 g\n\nWater, 350 g\n\nDay\tRain (mm)\n\nMonday\t4.2"


def test_pre_keeps_its_lines():
    assert html_to_text("<p>Run:</p><pre>make build\nmake test</pre>") == "Run:\n\nmake build\nmake test"


def test_script_with_closing_tag_in_string_style_and_comments_are_invisible():
    page = (
        "<html><head><style>p{color:red}</style></head><body>"
        "<script>var s = '</div><p>not text</p>';</script>"
        "<!-- <p>commented out</p> --><p>Visible.</p><noscript>Enable JS</noscript><template><p>tpl</p></template>"
        "</body></html>"
    )
    assert html_to_text(page) == "Visible."


def test_inline_link_inside_prose_is_kept_but_a_link_list_is_dropped():
    page = (
        '<div><p>The report, <a href="/r.pdf">published on Monday</a>, found that rents rose by '
        "nine per cent in a year across the region.</p></div>"
        '<div><a href="/a">Weather</a> <a href="/b">Traffic</a> <a href="/c">Horoscopes</a></div>'
    )
    assert html_to_text(page) == (
        "The report, published on Monday, found that rents rose by nine per cent in a year across the region."
    )


def test_article_header_is_kept_but_site_header_is_not():
    page = (
        '<body><header><a href="/">Logo</a> Daily Planet</header><article><header><h1>Title of the story</h1>'
        "<p>By A. Writer</p></header><p>Body text of the story.</p></article></body>"
    )
    assert html_to_text(page) == "Title of the story\n\nBy A. Writer\n\nBody text of the story."


def test_boilerplate_class_on_a_wrapper_of_the_content_does_not_remove_the_content():
    page = '<body><div class="layout with-sidebar"><h1>Headline</h1><p>Story.</p></div><div class="sidebar">Links</div></body>'
    assert html_to_text(page) == "Headline\n\nStory."


def test_hidden_and_aria_hidden_elements_are_invisible():
    page = (
        '<p>Shown.</p><p hidden>Hidden attribute.</p><div style="DISPLAY: none">Inline style.</div>'
        '<span aria-hidden="true">Decorative.</span><div class="sr-only">Skip to content</div>'
    )
    assert html_to_text(page) == "Shown."


def test_cookie_banner_by_id_is_removed():
    page = '<div id="onetrust-consent-sdk"><p>We value your privacy.</p></div><p>Actual text.</p>'
    assert html_to_text(page) == "Actual text."


def test_remove_boilerplate_false_keeps_navigation():
    page = "<nav><ul><li><a href='/'>Home</a></li></ul></nav><p>Text.</p>"
    assert html_to_text(page) == "Text."
    # nav is never visible prose, but a link-only div is kept when boilerplate removal is off.
    page = "<div><a href='/'>Home</a> <a href='/x'>News</a></div><p>Text.</p>"
    assert html_to_text(page, remove_boilerplate=False) == "Home News\n\nText."


def test_degenerate_inputs():
    assert html_to_text("") == ""
    assert html_to_text("plain words, no tags") == "plain words, no tags"
    assert html_to_text("<p>unclosed <b>bold <i>both") == "unclosed bold both"


def test_very_deep_nesting_does_not_hit_the_recursion_limit():
    page = "<div>" * 5000 + "deep text" + "</div>" * 5000
    assert html_to_text(page) == "deep text"


@pytest.mark.parametrize(
    "text",
    [
        "<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>",
        "<HTML>\n<BODY BGCOLOR=white>old page</BODY></HTML>",
        '<div class="a"><p>One</p><p>Two <a href="/">link</a></p></div>',
        read("news_article.html"),
    ],
)
def test_looks_like_html_true(text):
    assert looks_like_html(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "A plain paragraph about HTML, where <br> is a line break tag.",
        "if a < b and c > d then print(a)",
        "Dear John,\n\nSee you at 5pm.\n\n-- M",
    ],
)
def test_looks_like_html_false(text):
    assert not looks_like_html(text)


_PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp")) | st.sampled_from(" \n\t"),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(_PLAIN)
def test_escaped_text_in_a_paragraph_comes_back_with_whitespace_collapsed(text):
    assert html_to_text(f"<p>{stdlib_html.escape(text)}</p>") == " ".join(text.split())


@settings(max_examples=100, deadline=None)
@given(st.lists(_PLAIN, min_size=1, max_size=5))
def test_output_never_contains_a_tag_from_the_markup(paragraphs):
    page = "".join(f"<div><p>{stdlib_html.escape(p)}</p></div>" for p in paragraphs)
    text = html_to_text(page)
    assert "<p>" not in text and "<div>" not in text
    assert "\n\n\n" not in text
    assert text == text.strip()


def test_a_nesting_bomb_is_dropped_before_parsing_and_counted(monkeypatch):
    from collections import Counter

    import corpusgen.html
    from corpusgen import stats
    from corpusgen.clean import clean_document
    from corpusgen.config import BuildConfig
    from corpusgen.html import MAX_NESTING, nested_too_deep

    def parse(*args, **kwargs):
        raise AssertionError("parsed: 200,000 nested elements take lexbor minutes")

    monkeypatch.setattr(corpusgen.html, "html_to_text", parse)
    bomb = "<html><body>" + "<div>" * 200_000 + "Deep text. Another." + "</div>" * 200_000 + "</body></html>"
    counts = Counter()
    assert clean_document(bomb, BuildConfig(), counts) == (None, stats.HTML_TOO_DEEP)
    assert counts[stats.HTML_DOCUMENTS] == 1
    deep = "<div>" * MAX_NESTING + "x" + "</div>" * MAX_NESTING
    assert not nested_too_deep(deep) and nested_too_deep("<div>" + deep + "</div>")
    # many elements side by side, or ones the parser closes itself, are no nesting
    assert not nested_too_deep("<div>a</div>" * 50_000 + "<p>b" * 50_000 + "<br>" * 50_000)
    assert nested_too_deep("<font>x" * 5_000)  # unclosed formatting elements do nest
