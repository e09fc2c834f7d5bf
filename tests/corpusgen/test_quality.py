"""Each rule is exercised with a document shaped like the web text it targets (all written for these
tests), and the exact drop reason is asserted."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusgen import quality as q
from corpusgen.quality import QualityConfig, check_document, dominant_script, strip_boilerplate_lines

ARTICLE = """Residents of Millbrook will be able to borrow tools as well as books from next month, after the town \
library secured funding for what it calls a library of things.

The scheme, which opens on the first of June, will lend out drills, ladders, pressure washers and sewing \
machines for up to a week at a time. Members pay nothing to join, although a small deposit is taken for \
the most expensive items.

Librarian Grace Holloway said the idea came from readers themselves. "People kept telling us they had \
bought a drill to put up one shelf and never used it again," she said. "Sharing them just makes sense."

The council has agreed to review the project after a year, and it hopes that other branches will follow \
if demand is strong enough."""

CHINESE_ARTICLE = (
    "从下个月开始，米尔布鲁克的居民不仅可以在镇图书馆借书，还可以借工具。图书馆获得了一笔资金，用来建立所谓的"
    "“物品图书馆”。\n\n该计划将于六月一日启动，出借电钻、梯子、高压清洗机和缝纫机，每次最长一周。会员免费加入，"
    "但借用最贵的物品时需要交少量押金。图书管理员说，这个想法来自读者本身。"
)

GERMAN_ARTICLE = """Die Stadtbibliothek von Millbrook verleiht ab dem nächsten Monat nicht nur Bücher, sondern auch \
Werkzeuge. Bohrmaschinen, Leitern, Hochdruckreiniger und Nähmaschinen können bis zu einer Woche lang ausgeliehen \
werden. Die Mitgliedschaft ist kostenlos, für besonders teure Geräte wird jedoch eine kleine Kaution verlangt. \
Die Idee stammt nach Angaben der Bibliothekarin von den Lesern selbst, die sich über selten benutzte Geräte \
geärgert hatten."""

RUSSIAN_ARTICLE = """Со следующего месяца жители Миллбрука смогут брать в городской библиотеке не только книги, но и \
инструменты. Дрели, лестницы, мойки высокого давления и швейные машины будут выдаваться на срок до одной недели. \
Членство бесплатное, однако за самые дорогие предметы берётся небольшой залог. По словам библиотекаря, идея \
принадлежит самим читателям, которые устали покупать вещи ради одного использования."""

SENTENCES = ["one.", "two.", "three."]


def test_good_article_is_kept():
    assert check_document(ARTICLE, SENTENCES) is None
    assert check_document(ARTICLE) is None  # no sentence list: sentence rule skipped


def test_chinese_article_is_kept_word_rules_use_characters():
    assert check_document(CHINESE_ARTICLE, SENTENCES) is None


def test_too_short():
    notice = "Opening hours: the shop is open from nine to five on weekdays and closed on public holidays."
    assert check_document(notice, SENTENCES) == q.TOO_SHORT


def test_too_long():
    assert check_document(ARTICLE, SENTENCES, QualityConfig(max_words=100)) == q.TOO_LONG


def test_too_few_sentences():
    assert check_document(ARTICLE, ["Residents of Millbrook…", "The scheme…"]) == q.TOO_FEW_SENTENCES


def test_lorem_ipsum():
    page = ARTICLE + "\n\nLorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor."
    assert check_document(page, SENTENCES) == q.LOREM_IPSUM


def test_curly_bracket_only_when_enabled():
    page = ARTICLE + "\n\nfunction toggle() { menu.classList.toggle('open'); }"
    assert check_document(page, SENTENCES) is None
    assert check_document(page, SENTENCES, QualityConfig(drop_curly_bracket=True)) == q.CURLY_BRACKET


CHAT_LOG = """me: ok so i am on the bus now
u: ok u at the st yet
me: no not yet. it is so slow lol
u: ha ok i am at the cafe by the bay
me: ok i go to u in 10 or so
u: ok do u want a tea or a cup of joe
me: ya a tea pls. no ice
u: ok got it. see ya
me: ya see u in a bit
u: ok ok bye"""

SEO_KEYWORDS = """Industrial refrigeration maintenance, commercial dishwasher installation, professional \
ventilation troubleshooting, emergency waterproofing replacement, certified electrical inspections, affordable \
waterproofing specialists, comprehensive landscaping consultations, residential thermostat programming, \
environmental compliance documentation, accredited asbestos abatement, professional insulation upgrades, \
manufacturer warranty registration, comprehensive kitchen renovations, professional architectural drafting, \
sustainable photovoltaic installations, experienced carpentry contractors, dependable locksmithing services, \
specialised chimney restoration, responsive maintenance subscriptions, certified refrigeration technicians, \
independent construction surveyors, contemporary bathroom refurbishments, professional staircase manufacturing, \
commercial flooring installations, industrial warehouse electrification, municipal infrastructure consultancy, \
comprehensive property inspections, affordable conservatory construction, experienced scaffolding contractors."""


def test_mean_word_length_too_short():
    assert check_document(CHAT_LOG, SENTENCES) == q.MEAN_WORD_LENGTH


def test_mean_word_length_too_long():
    assert check_document(SEO_KEYWORDS, SENTENCES) == q.MEAN_WORD_LENGTH


HASHTAG_POST = """Golden hour at the harbour with the best crew and the calmest water of the whole summer trip! \
#sunset #harbour #sailing #summer #travel #travelgram #instatravel #wanderlust #ocean #sea #boat #boatlife \
#goldenhour #photooftheday #nofilter #beautiful #nature #naturelovers #seascape #sky #clouds #vacation \
#holiday #explore #adventure #friends #memories #happy #love #instagood #picoftheday #coast #waves #sail \
#yacht #marina #weekend #mood #vibes #bluesky #reflection #horizon #evening #relax #peaceful #calm #light"""


def test_symbol_to_word_ratio():
    assert check_document(HASHTAG_POST, SENTENCES) == q.SYMBOL_TO_WORD_RATIO


BULLET_PAGE = """Product features:
• Stainless steel body with a brushed finish that resists fingerprints
• Holds up to 1.7 litres of water, enough for eight cups of tea
• Rapid boil: from cold to boiling in under three minutes
• Keep-warm function that holds the water at the chosen temperature
• Five temperature presets for green, white, oolong and black tea
• Removable limescale filter that can be rinsed under the tap
• Cordless design with a 360-degree base for left or right hands
• Automatic shut-off when the kettle is empty or lifted from the base
• Soft-opening lid to avoid steam burns and splashes
• Water window with clear markings on both sides
• Cord storage in the base to keep the worktop tidy
• Two-year warranty and free returns within thirty days"""


def test_bullet_lines():
    assert check_document(BULLET_PAGE, SENTENCES) == q.BULLET_LINES


TEASERS = """Council approves new footbridge over the Wend after ten years of argument and delay between residents...
Station car park to get forty new spaces and a covered area for bicycles by the end of the summer...
Weather: a dry and bright weekend ahead before the rain returns to the whole region on Monday...
Local bakery wins national award for its sourdough loaf, beating more than two hundred other entries.
Old Mill estate residents celebrate the opening of a new play park with a picnic on the green.
Flood defences along the river will be inspected again after the wettest winter on record...
The library of things opens in June with drills, ladders and sewing machines to borrow for free.
Schools will have a new term date next year, the council has confirmed after a consultation."""


def test_ellipsis_lines():
    assert check_document(TEASERS, SENTENCES) == q.ELLIPSIS_LINES


TIMETABLE = """Route 42 timetable, valid from 3 June. Buses run from the bus station to the hospital and back \
with stops at the market, the school and the library.
Monday to Friday: 06:10 06:40 07:05 07:25 07:45 08:05 08:25 08:45 09:15 09:45 10:15 10:45 11:15 11:45 \
12:15 12:45 13:15 13:45 14:15 14:45 15:15 15:35 15:55 16:15 16:35 16:55 17:15 17:45 18:15 18:45 19:30 20:30
Saturday: 07:15 08:15 09:15 10:15 11:15 12:15 13:15 14:15 15:15 16:15 17:15 18:15 19:15
Sunday: 09:30 11:30 13:30 15:30 17:30"""


def test_too_few_alpha_words():
    assert check_document(TIMETABLE, SENTENCES) == q.TOO_FEW_ALPHA_WORDS


KEYWORD_SPAM = """Cheap flights London Paris cheap hotels Rome Madrid last minute deals Berlin Vienna Prague \
budget travel packages Lisbon Porto Seville holiday rentals Barcelona Valencia Malaga beach resorts Nice \
Cannes Monaco ski chalets Geneva Zurich Innsbruck city breaks Amsterdam Brussels Copenhagen weekend getaways \
Dublin Edinburgh Glasgow luxury cruises Athens Santorini Mykonos family holidays Florence Venice Milan"""


def test_too_few_stop_words():
    assert check_document(KEYWORD_SPAM, SENTENCES) == q.TOO_FEW_STOP_WORDS


FORUM_THREAD = """Has anyone tried the new library of things in Millbrook? I want to borrow a drill.
Reply · Quote · Report
Yes, I borrowed a ladder last week and the whole thing took five minutes at the desk.
Reply · Quote · Report
You need to bring your library card and pay a small deposit for the bigger items.
Reply · Quote · Report
They also have a sewing machine now, which is great for the school costume season.
Reply · Quote · Report
Good to know, thanks. I will go on Saturday morning with my card and a bag.
Reply · Quote · Report"""


def test_repeated_lines():
    assert check_document(FORUM_THREAD, SENTENCES) == q.REPEATED_LINES


def test_repeated_line_chars():
    long_line = (
        "Please note that all orders placed after two o'clock on a Friday will be dispatched on the following "
        "Monday, and that deliveries to the islands and the highlands can take up to five working days."
    )
    page = "\n".join(
        [
            "Garden furniture sale",
            long_line,
            "Teak bench, seats three, with a weatherproof finish",
            "Folding bistro table and two chairs in sage green",
            "Rattan corner sofa with cushions and a glass table",
            "Cast iron fire pit with a mesh lid and poker",
            "Parasol with a crank handle and a heavy base",
            "Hammock with a steel stand that needs no trees",
            long_line,
            "Outdoor cushions in four colours that dry quickly",
        ]
    )
    assert check_document(page, SENTENCES) == q.REPEATED_LINE_CHARS


_NO_LINE_RULES = QualityConfig(max_repeated_lines=None, max_repeated_line_chars=None)


def test_repeated_paragraphs():
    ad = "Advertise with us.\nReach our readers."
    paragraphs = [
        "Residents of Millbrook will be able to borrow tools as well as books from next month.",
        ad,
        "The scheme will lend out drills, ladders and sewing machines for up to a week at a time.",
        ad,
        "Members pay nothing to join, although a small deposit is taken for the most expensive items.",
        ad,
        "The council has agreed to review the project after a year, with the help of its readers.",
        ad,
    ]
    assert check_document("\n\n".join(paragraphs), SENTENCES, _NO_LINE_RULES) == q.REPEATED_PARAGRAPHS


def test_repeated_paragraph_chars():
    terms = (
        "Prices include VAT at the current rate.\nDelivery is free on orders over fifty pounds to mainland "
        "addresses, and every order can be returned within thirty days of delivery for a full refund."
    )
    paragraphs = [
        "Teak bench, seats three, with a weatherproof finish.",
        terms,
        "Folding bistro table and two chairs in sage green.",
        "Rattan corner sofa with cushions and a glass table.",
        "Cast iron fire pit with a mesh lid and a poker.",
        terms,
    ]
    assert check_document("\n\n".join(paragraphs), SENTENCES, _NO_LINE_RULES) == q.REPEATED_PARAGRAPH_CHARS


SEO_HOTELS = """New York hotels: find New York hotels near New York airports and New York attractions. Our New York \
hotel guide compares New York hotel prices, so New York visitors can book New York rooms with the best New York \
rates. New York families love New York suites, and New York business travellers choose New York lofts close to \
the New York offices of their companies."""


def test_repeated_top_ngram():
    assert check_document(SEO_HOTELS, SENTENCES) == q.REPEATED_TOP_NGRAM


SERVICE_PAGE = """Millbrook Heating has looked after boilers, radiators and underfloor systems in the valley since \
1987, and most of our customers found us through a neighbour.
Every visit starts with a safety check of the flue and the gas pressure, followed by a clean of the burner and \
the heat exchanger. We replace worn seals as a matter of course and tell you before any larger repair.
Our engineers are registered with the national safety scheme and carry identification on every visit, which \
you are welcome to check with the register before letting anyone into your home.
Bookings open at eight each weekday morning, and emergency calls are answered around the clock. Our engineers \
are registered with the national safety scheme and carry identification on every visit, which you are welcome \
to check with the register before letting anyone into your home."""


def test_repeated_dup_ngram():
    # No line repeats, but one 30-word passage appears twice: a fifth of the words.
    assert check_document(SERVICE_PAGE, SENTENCES) == q.REPEATED_DUP_NGRAM


def test_wrong_script():
    cfg = QualityConfig(scripts=("Latin",))
    assert check_document(ARTICLE, SENTENCES, cfg) is None
    assert check_document(RUSSIAN_ARTICLE, SENTENCES, cfg) == q.WRONG_SCRIPT
    assert check_document(RUSSIAN_ARTICLE, SENTENCES, QualityConfig(scripts=("Cyrillic",), min_stop_words=None)) is None


def test_wrong_language_with_packaged_model():
    cfg = QualityConfig(languages=("en",))
    assert check_document(ARTICLE, SENTENCES, cfg) is None
    assert check_document(GERMAN_ARTICLE, SENTENCES, cfg) == q.WRONG_LANGUAGE
    assert q.detect_language(GERMAN_ARTICLE)[0] == "de"


def test_dominant_script():
    assert dominant_script(ARTICLE)[0] == "Latin"
    assert dominant_script(RUSSIAN_ARTICLE)[0] == "Cyrillic"
    assert dominant_script("日本語のテキストです。ひらがなとカタカナ。")[0] == "Han"
    assert dominant_script("1234 !!!") == (None, 0.0)


@pytest.mark.parametrize(
    ("doc", "reason", "switch_off"),
    [
        (CHAT_LOG, q.MEAN_WORD_LENGTH, {"min_mean_word_length": None}),
        (HASHTAG_POST, q.SYMBOL_TO_WORD_RATIO, {"max_symbol_to_word_ratio": None}),
        (BULLET_PAGE, q.BULLET_LINES, {"max_bullet_lines": None}),
        (TEASERS, q.ELLIPSIS_LINES, {"max_ellipsis_lines": None}),
        (KEYWORD_SPAM, q.TOO_FEW_STOP_WORDS, {"min_stop_words": None}),
        (FORUM_THREAD, q.REPEATED_LINES, {"max_repeated_lines": None, "max_repeated_paragraphs": None}),
        (SEO_HOTELS, q.REPEATED_TOP_NGRAM, {"max_top_ngram_chars": None, "max_dup_ngram_chars": None}),
        (SERVICE_PAGE, q.REPEATED_DUP_NGRAM, {"max_dup_ngram_chars": None}),
    ],
)
def test_each_rule_can_be_switched_off(doc, reason, switch_off):
    assert check_document(doc, SENTENCES) == reason
    assert check_document(doc, SENTENCES, QualityConfig(**switch_off)) != reason


def test_strip_boilerplate_lines_removes_notices_and_counts_them():
    page = """We use cookies to improve your experience. By continuing you agree to our use of cookies.
Residents of Millbrook will be able to borrow tools as well as books from next month.

The scheme opens in June. Members pay nothing to join.
Share this article
Please enable JavaScript to view the comments.

Copyright © 2024 The Millbrook Gazette. All rights reserved.
Privacy Policy | Terms of Use"""
    text, removed = strip_boilerplate_lines(page)
    assert removed == 5
    assert text == (
        "Residents of Millbrook will be able to borrow tools as well as books from next month.\n\n"
        "The scheme opens in June. Members pay nothing to join."
    )


def test_strip_boilerplate_lines_keeps_long_paragraphs_that_mention_cookies():
    paragraph = (
        "The court ruled on Tuesday that the website had broken the law by setting tracking cookies before "
        "visitors could accept or refuse them, and it ordered the company to pay a fine of two million euros "
        "and to change the banner within three months, a decision that privacy campaigners welcomed."
    )
    assert strip_boilerplate_lines(paragraph) == (paragraph, 0)
    assert strip_boilerplate_lines(paragraph, QualityConfig(max_boilerplate_line_words=80)) == ("", 1)


def test_strip_boilerplate_lines_keeps_innocent_lines():
    text = "Copyright law is changing.\nThe terms were agreed on Monday.\nShare prices rose."
    assert strip_boilerplate_lines(text) == (text, 0)


def test_terminal_punctuation_rule_of_c4():
    text = "Menu\nThe scheme opens in June.\nRead the report\nShe said: “It makes sense.”"
    cfg = QualityConfig(require_terminal_punctuation=True)
    assert strip_boilerplate_lines(text, cfg) == ("The scheme opens in June.\nShe said: “It makes sense.”", 2)


def test_strip_is_identity_when_off():
    cfg = QualityConfig(strip_boilerplate=False)
    assert strip_boilerplate_lines("Accept all cookies", cfg) == ("Accept all cookies", 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_words": 100, "max_words": 50}, "min_words=100 is above max_words=50"),
        ({"max_bullet_lines": 1.5}, "max_bullet_lines=1.5 must be a share"),
        ({"max_top_ngram_chars": (0.2,)}, "needs 3 values"),
        ({"scripts": ("Klingon",)}, "unknown scripts"),
        ({"languages": ("en", "zz")}, "languages 'zz' unknown to the language identifier; give ISO 639-1 codes"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QualityConfig(**kwargs)


def test_config_accepts_lists_from_json_and_serialises():
    cfg = QualityConfig(languages=["en"], max_top_ngram_chars=[0.2, 0.18, 0.16])
    assert cfg.languages == ("en",)
    assert dataclasses.asdict(cfg) == cfg.to_dict()


def test_drop_reasons_are_unique_snake_case():
    assert len(set(q.DROP_REASONS)) == len(q.DROP_REASONS)
    assert all(r.replace("_", "").isalpha() and r.islower() for r in q.DROP_REASONS)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400), st.lists(st.text(max_size=20), max_size=5))
def test_check_document_returns_none_or_a_known_reason(text, sentences):
    assert check_document(text, sentences) in (None, *q.DROP_REASONS)
    stripped, removed = strip_boilerplate_lines(text)
    assert removed >= 0 and len(stripped) <= len(text)


def test_language_codes_are_read_in_any_case():
    """An upper-case code kept every document out before (the identifier answers in lower case)."""
    cfg = QualityConfig(languages=("EN", " De "))
    assert cfg.languages == ("en", "de")
    assert check_document(ARTICLE, SENTENCES, cfg) is None
