"""HTML to visible text, with navigation boilerplate removed and paragraphs kept.

Parsing is lexbor's (through selectolax): a spec-compliant HTML5 parser in C, so broken markup,
entities, comments and ``</div>`` inside scripts are handled the way a browser handles them.
Extraction is ours, in two passes over the parsed tree:

1. Boilerplate subtrees are marked with one CSS query run in C: non-visible elements (script, style,
   template, ``hidden``, ``display:none``), page chrome (nav, header, footer, aside, forms, ARIA
   landmarks) and the class/id names sites give to menus, cookie banners, share bars, newsletters,
   related-story boxes and ads. A marked element that holds the main content (``article``, ``main``
   or the ``h1``) is kept: sites put ``has-sidebar`` on ``<body>`` too.
2. One walk emits text: block elements become paragraph breaks, ``<br>`` a line break, table cells a
   tab, and a block whose kept text is mostly link text (menus, tag clouds, "related" lists that
   escaped the names in pass 1) is dropped afterwards.

resiliparse's ``extract_plain_text(main_content=True)`` was measured against this and rejected: on a
plain news page it drops the article's bulleted list and keeps the newsletter sign-up heading.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

__all__ = ["html_to_text", "looks_like_html", "nested_too_deep"]

MAX_NESTING = 4096  # elements inside each other; lexbor's parse time grows with the square of the depth
_ANY_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*>")
# elements that hold no others (void), or that the parser closes when the next one opens
_FLAT = frozenset(
    "area base br col embed hr img input link meta param source track wbr "
    "p li dt dd tr td th option optgroup rb rt rp thead tbody tfoot colgroup caption".split()
)

_HTML_HINT_RE = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_TAG_RE = re.compile(
    r"</?(?:p|div|span|a|br|li|ul|ol|td|tr|table|h[1-6]|img|script|style|meta|link|title|b|i|em|strong"
    r"|section|article|nav|header|footer|form|input|iframe)\b[^<>]{0,400}>",
    re.IGNORECASE,
)
_SNIFF_CHARS = 4096
_MIN_TAGS = 4

# Elements whose content is never visible text, or is page chrome wherever it appears.
_SKIP_TAGS = frozenset(
    "script style noscript template svg math iframe object embed canvas video audio map area head title meta link"
    " nav aside menu menuitem button select option optgroup datalist textarea input label dialog img picture"
    " source track".split()
)
# Chrome that can also wrap the main content on some sites, so every match is checked against the guard.
_CHROME_TAGS = frozenset({"header", "footer", "form"})
_CHROME_ROLES = frozenset(
    "navigation banner contentinfo complementary search dialog alertdialog menu menubar toolbar".split()
)
_HIDDEN_STYLE_RE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# Class/id names that mean boilerplate on real sites. Substrings are specific enough not to hit content
# names; short words ("nav" is in "canvas", "ad" in "header") must be whole class tokens.
_NAME_SUBSTRINGS = (
    "cookie consent gdpr breadcrumb newsletter sidebar navbar navigation social share sharing related"
    " recommend advert sponsor promo popup modal subscribe signup sign-up paywall skip-link skiplink sr-only"
    " screen-reader visually-hidden visuallyhidden masthead topbar toolbar pagination widget adsbygoogle"
    " ad-slot ad-container ad-wrapper banner-ad menu nav- -nav _nav nav_ site-header site-footer page-footer"
    " page-header"
).split()
_NAME_WORDS = "nav ad ads footer header banner comments-link author-box tags".split()
_BOILERPLATE_NAME_RE = re.compile(
    "|".join(map(re.escape, _NAME_SUBSTRINGS)) + r"|(?:^|\s)(?:" + "|".join(_NAME_WORDS) + r")(?:\s|$)",
    re.IGNORECASE,
)
# One CSS query (lexbor, in C) finds every element that might be boilerplate; Python decides.
_CANDIDATE_SELECTOR = "header, footer, form, [class], [id], [hidden], [aria-hidden], [role], [style]"
_GUARD_SELECTOR = "article, main, h1"
_NEVER_REMOVED = frozenset({"html", "body", "main", "article"})

_BLOCK_TAGS = frozenset(
    "address article blockquote body center dd details dir div dl dt fieldset figcaption figure footer form"
    " h1 h2 h3 h4 h5 h6 header hgroup hr html legend li listing main ol p plaintext pre section summary"
    " table tbody thead tfoot tr caption ul".split()
)
_CELL_TAGS = frozenset({"td", "th"})
_LINK_DENSITY_EXEMPT = frozenset({"body", "html", "main", "article"})
# A heading that is one link is how blogs print a post's title: its text does not count as link text.
_TITLE_TAGS = frozenset({"h1", "h2", "h3"})

_PARA = "\n\n"
_BR = "\n"
_CELL = "\t"
_WS_RE = re.compile(r"\s+")
_CELL_SEP_RE = re.compile(r" *\t[ \t]*")
_SPACES_RE = re.compile(r" {2,}")
_LINE_EDGE_RE = re.compile(r"[ \t]*\n[ \t]*")
_BLANK_LINES_RE = re.compile(r"\n{3,}")


def nested_too_deep(html: str, limit: int = MAX_NESTING) -> bool:
    """Whether elements nest more than ``limit`` deep (counted from the tags: an estimate that
    never undercounts closed nesting). A page of 200,000 nested ``<div>`` took lexbor 4 minutes
    to parse; real pages nest a few dozen deep. Pages with fewer tags than ``limit`` cost one count."""
    if html.count("<") <= limit:
        return False
    depth = 0
    for m in _ANY_TAG_RE.finditer(html):
        if m.group(2).lower() in _FLAT:
            continue
        if m.group(1):
            depth = max(0, depth - 1)
        elif not m.group(0).endswith("/>"):
            depth += 1
            if depth > limit:
                return True
    return False


def looks_like_html(text: str) -> bool:
    """Whether a document is HTML (cheap: regexes over its first 4 KiB)."""
    head = text[:_SNIFF_CHARS]
    if _HTML_HINT_RE.search(head):
        return True
    # Fragments without <html>: several real tags, not one "<b>" mentioned in prose.
    n = 0
    for _ in _TAG_RE.finditer(head):
        n += 1
        if n >= _MIN_TAGS:
            return True
    return False


def _boilerplate_ids(tree: LexborHTMLParser) -> set[int]:
    """mem_ids of the elements to skip in the walk (marked rather than removed, so nothing is freed
    under a node that is still referenced)."""
    body = tree.body
    if body is None:
        return set()
    body_len = len(body.text(deep=True))
    skip: set[int] = set()
    for node in body.css(_CANDIDATE_SELECTOR):
        tag = node.tag
        if tag in _NEVER_REMOVED or not (tag in _CHROME_TAGS or _is_boilerplate_element(node.attributes)):
            continue
        if node.css_first(_GUARD_SELECTOR) is not None:
            continue
        # A header inside the article holds its title and byline, not site chrome.
        if node.tag == "header" and _has_ancestor(node, ("article", "main")):
            continue
        if body_len >= 1000 and len(node.text(deep=True)) > 0.5 * body_len:
            continue
        skip.add(node.mem_id)
    return skip


def _is_boilerplate_element(attrs: dict[str, str | None]) -> bool:
    if "hidden" in attrs or attrs.get("aria-hidden") == "true" or attrs.get("role") in _CHROME_ROLES:
        return True
    style = attrs.get("style")
    if style and _HIDDEN_STYLE_RE.search(style):
        return True
    names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}"
    return names != " " and _BOILERPLATE_NAME_RE.search(names) is not None


def _has_ancestor(node, tags: tuple[str, ...]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def html_to_text(html: str, *, remove_boilerplate: bool = True, max_link_density: float = 0.5) -> str:
    """Visible text of an HTML document: paragraphs separated by a blank line, ``<br>`` as a newline.

    With ``remove_boilerplate`` (the default) navigation, headers, footers, sidebars, cookie banners,
    share bars and blocks whose text is more than ``max_link_density`` link text are left out.
    Entities are decoded; whitespace is collapsed except inside ``<pre>`` (where indentation is lost).
    """
    tree = LexborHTMLParser(html)
    root = tree.root
    if root is None:
        return ""
    skip = _boilerplate_ids(tree) if remove_boilerplate else set()
    density_check = remove_boilerplate and max_link_density < 1.0

    out: list[str] = []
    total = 0  # characters of kept text so far
    linked = 0  # of which inside <a>
    in_link = 0
    in_pre = 0
    in_title = 0
    # Each frame: (children iterator, what to undo on exit). Iterative: real pages nest deeper than
    # Python's recursion limit.
    stack = [(root.iter(include_text=True), None)]
    while stack:
        children, frame = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            if frame is None:
                continue
            kind = frame[0]
            if kind == "title":
                in_title -= 1
                kind = "block"
            if kind == "a":
                in_link -= 1
            elif kind == "pre":
                in_pre -= 1
                out.append(_PARA)
            else:  # block or title
                _, tag, start, total_at, linked_at = frame
                block_total = total - total_at
                if (
                    density_check
                    and block_total
                    and tag not in _LINK_DENSITY_EXEMPT
                    and (linked - linked_at) > max_link_density * block_total
                ):
                    del out[start:]
                    total, linked = total_at, linked_at
                out.append(_PARA)
            continue
        tag = node.tag
        if tag == "-text":
            text = node.text_content
            if not text:
                continue
            if in_pre:
                out.append(text)
                n = len(text)
            elif text.isspace():
                out.append(" ")
                continue
            else:
                text = _WS_RE.sub(" ", text)
                out.append(text)
                n = len(text)
            total += n
            if in_link and not in_title:
                linked += n
            continue
        if tag[0] == "-" or tag in _SKIP_TAGS or (skip and node.mem_id in skip):
            continue  # comments, doctype, invisible or boilerplate elements
        if tag == "br":
            out.append(_BR)
            continue
        if tag in _BLOCK_TAGS:
            out.append(_PARA)
            if tag == "pre":
                in_pre += 1
                frame = ("pre",)
            elif tag in _TITLE_TAGS:
                in_title += 1
                frame = ("title", tag, len(out), total, linked)
            else:
                frame = ("block", tag, len(out), total, linked)
        elif tag in _CELL_TAGS:
            out.append(_CELL)
            frame = None
        elif tag == "a":
            in_link += 1
            frame = ("a",)
        else:
            frame = None
        stack.append((node.iter(include_text=True), frame))

    text = "".join(out)
    text = _CELL_SEP_RE.sub(_CELL, text)
    text = _SPACES_RE.sub(" ", text)
    text = _LINE_EDGE_RE.sub("\n", text)
    text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip()
