"""Sentence splitter: one test per rule with exact expectations, line-break
modes, languages, and the no-loss property."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusgen.split import guess_language, split_sentences

EWT_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "sbd" / "ud_en_ewt_dev_sentences.jsonl"


def _nonspace(text: str) -> str:
    return "".join(text.split())


# --------------------------------------------------------------------------- English


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain stops
        (
            "The river rose overnight. Farmers moved their cattle.",
            ["The river rose overnight.", "Farmers moved their cattle."],
        ),
        ("Where is the station? It is behind the museum!", ["Where is the station?", "It is behind the museum!"]),
        ("Did he really say that?! Nobody believed him.", ["Did he really say that?!", "Nobody believed him."]),
        ("Hello!! Long time no see.", ["Hello!!", "Long time no see."]),
        # titles
        ("Mr. Smith met Dr. Jones and Prof. Adams at noon.", ["Mr. Smith met Dr. Jones and Prof. Adams at noon."]),
        (
            "Mrs. Dalloway said she would buy the flowers herself.",
            ["Mrs. Dalloway said she would buy the flowers herself."],
        ),
        # initials
        (
            "The Hobbit was written by J. R. R. Tolkien in 1937.",
            ["The Hobbit was written by J. R. R. Tolkien in 1937."],
        ),
        (
            "We make a good team, you and I. Did you see Albert I. Jones?",
            ["We make a good team, you and I.", "Did you see Albert I. Jones?"],
        ),
        # Latin abbreviations
        ("Bring fruit, e.g. apples or pears, and bread.", ["Bring fruit, e.g. apples or pears, and bread."]),
        ("Use a fine grind, i.e. Espresso grade, for this.", ["Use a fine grind, i.e. Espresso grade, for this."]),
        (
            "As shown by Smith et al. in their survey, the effect is small.",
            ["As shown by Smith et al. in their survey, the effect is small."],
        ),
        (
            "We packed tents, stoves, etc. The hike began at dawn.",
            ["We packed tents, stoves, etc.", "The hike began at dawn."],
        ),
        ("It was Brazil vs. Germany in the semi-final.", ["It was Brazil vs. Germany in the semi-final."]),
        # months, days and units
        ("The meeting moved to Jan. 15 because of the storm.", ["The meeting moved to Jan. 15 because of the storm."]),
        (
            "The board measures 12 in. by 4 ft. and weighs 3 lbs. in total.",
            ["The board measures 12 in. by 4 ft. and weighs 3 lbs. in total."],
        ),
        # acronyms with periods
        ("I work for the U.S. Government in Virginia.", ["I work for the U.S. Government in Virginia."]),
        ("I live in the U.S. How about you?", ["I live in the U.S.", "How about you?"]),
        (
            "At 5 a.m. Mr. Smith went to the bank. He left at 6 P.M. Mr. Smith then went home.",
            ["At 5 a.m. Mr. Smith went to the bank.", "He left at 6 P.M.", "Mr. Smith then went home."],
        ),
        # companies
        (
            "They closed the deal with Pitt, Briggs & Co. It closed yesterday.",
            ["They closed the deal with Pitt, Briggs & Co.", "It closed yesterday."],
        ),
        ("Shares of Acme Inc. rose sharply on Friday.", ["Shares of Acme Inc. rose sharply on Friday."]),
        # numbers
        ("See No. 5 on the list. It is the cheapest.", ["See No. 5 on the list.", "It is the cheapest."]),
        (
            "Pi is about 3.14 and the budget grew by 1.5 million. Version v2.0 fixed it.",
            ["Pi is about 3.14 and the budget grew by 1.5 million.", "Version v2.0 fixed it."],
        ),
        ("She paid $100.00. It was in her bag.", ["She paid $100.00.", "It was in her bag."]),
        ("Please turn to p. 55 of the report.", ["Please turn to p. 55 of the report."]),
        ("I said no. John left anyway.", ["I said no.", "John left anyway."]),
        # ellipses
        ("I never meant that.... She left the store.", ["I never meant that....", "She left the store."]),
        ("Well ... maybe we should wait. Or not.", ["Well ... maybe we should wait.", "Or not."]),
        ("I waited for hours… Nobody came.", ["I waited for hours…", "Nobody came."]),
        ('"Bohr [...] used the analogy [...]" (Smith 55).', ['"Bohr [...] used the analogy [...]" (Smith 55).']),
        # quotes and brackets after the stop
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ('"This is great." she said.', ['"This is great." she said.']),
        ("He shouted “Run!” Everyone ran.", ["He shouted “Run!”", "Everyone ran."]),
        (
            "He taught science (he had been an engineer.) at the college.",
            ["He taught science (he had been an engineer.) at the college."],
        ),
        ("(See the appendix.) The data follow.", ["(See the appendix.)", "The data follow."]),
        # lists and enumerations
        ("1. The first item 2. The second item", ["1. The first item", "2. The second item"]),
        ("1) Preheat the oven 2) Mix the flour 3) Bake", ["1) Preheat the oven", "2) Mix the flour", "3) Bake"]),
        ("a. The first item b. The second item", ["a. The first item", "b. The second item"]),
        ("• Fresh bread • Cold milk", ["• Fresh bread", "• Cold milk"]),
        ("The result is in chapter 2. The proof follows.", ["The result is in chapter 2.", "The proof follows."]),
        # URLs and e-mail addresses
        (
            "The site is https://www.example.com/a/b.html. Please check it.",
            ["The site is https://www.example.com/a/b.html.", "Please check it."],
        ),
        (
            "Her email is jane.doe@example.com. I wrote to her.",
            ["Her email is jane.doe@example.com.", "I wrote to her."],
        ),
        ("Download it from www.python.org and install it.", ["Download it from www.python.org and install it."]),
        # emoticons
        ("Thanks for the help :) See you tomorrow", ["Thanks for the help :)", "See you tomorrow"]),
        ("That was great! :D We should do it again.", ["That was great! :D", "We should do it again."]),
        # web text: lowercase starts, missing final punctuation
        (
            "i went to the store. it was closed. so i went home",
            ["i went to the store.", "it was closed.", "so i went home"],
        ),
        ("is it still open? i need to know", ["is it still open?", "i need to know"]),
        ("She works at Yahoo! in the accounting department.", ["She works at Yahoo! in the accounting department."]),
        # punctuation that does not end anything
        ("Graduates of St. Mary's earn more.", ["Graduates of St. Mary's earn more."]),
        ("That is JFK Jr.'s book.", ["That is JFK Jr.'s book."]),
    ],
)
def test_english_rules(text, expected):
    assert split_sentences(text) == expected


# --------------------------------------------------------------------------- CJK


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (
            "数学是研究数量的学科。它起源于古代！你知道吗？",
            "zh",
            ["数学是研究数量的学科。", "它起源于古代！", "你知道吗？"],
        ),
        ("他說：「我明天再來。」然後就走了。", "zh", ["他說：「我明天再來。」", "然後就走了。"]),
        (
            "孫中山曾說：“革命尚未成功，同志仍須努力！”。後來他病逝。",
            "zh",
            ["孫中山曾說：“革命尚未成功，同志仍須努力！”。", "後來他病逝。"],
        ),
        ("回答「法律為何？」、「法官如何判決？」等問題。", "zh", ["回答「法律為何？」、「法官如何判決？」等問題。"]),
        ("他读了《你好！北京》这本书。很好看。", "zh", ["他读了《你好！北京》这本书。", "很好看。"]),
        ("著名的“P=NP?”问题至今未解。你好吗?我很好", "zh", ["著名的“P=NP?”问题至今未解。", "你好吗?", "我很好"]),
        ("（注：此为旧称。）现在已改名。", "zh", ["（注：此为旧称。）", "现在已改名。"]),
        ("今日は晴れです。明日は雨でしょう！", "ja", ["今日は晴れです。", "明日は雨でしょう！"]),
        (
            "「行くよ。」と彼は言った。本当に！？そうですね。",
            "ja",
            ["「行くよ。」と彼は言った。", "本当に！？", "そうですね。"],
        ),
        ("東京は大きい．大阪も大きい．", "ja", ["東京は大きい．", "大阪も大きい．"]),
    ],
)
def test_cjk_rules(text, lang, expected):
    assert split_sentences(text, lang=lang) == expected


def test_cjk_stops_split_in_any_language_mode():
    assert split_sentences("第一句。第二句。", lang="en") == ["第一句。", "第二句。"]


# --------------------------------------------------------------------------- European languages


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (
            "Am 3. Oktober 1990 wurde Deutschland wiedervereinigt. Das war z. B. für Dr. Müller wichtig.",
            "de",
            ["Am 3. Oktober 1990 wurde Deutschland wiedervereinigt.", "Das war z. B. für Dr. Müller wichtig."],
        ),
        (
            "Er wohnt in der Hauptstr. 5 in Berlin. Vgl. dazu S. 45 im Buch.",
            "de",
            ["Er wohnt in der Hauptstr. 5 in Berlin.", "Vgl. dazu S. 45 im Buch."],
        ),
        ("„Kommst du mit?“ Sie nickte.", "de", ["„Kommst du mit?“", "Sie nickte."]),
        (
            "M. Dupont est arrivé. Il a dit : « Bonjour. » Puis il est parti. Vraiment ! Quelle surprise.",
            "fr",
            [
                "M. Dupont est arrivé.",
                "Il a dit : « Bonjour. »",
                "Puis il est parti.",
                "Vraiment !",
                "Quelle surprise.",
            ],
        ),
        ("Mme Martin, c.-à-d. sa voisine, l'a vu.", "fr", ["Mme Martin, c.-à-d. sa voisine, l'a vu."]),
        (
            "¿Dónde está el Sr. García? No lo sé. ¡Qué sorpresa! La Dra. López llegó a la oficina.",
            "es",
            ["¿Dónde está el Sr. García?", "No lo sé.", "¡Qué sorpresa!", "La Dra. López llegó a la oficina."],
        ),
        ("Vea la pág. 12 del informe. Gracias.", "es", ["Vea la pág. 12 del informe.", "Gracias."]),
        (
            "А. С. Пушкин родился в 1799 г. в Москве. Он был поэтом, т.е. писателем. Это известно и т. д. Потом он умер.",
            "ru",
            [
                "А. С. Пушкин родился в 1799 г. в Москве.",
                "Он был поэтом, т.е. писателем.",
                "Это известно и т. д.",
                "Потом он умер.",
            ],
        ),
        ("Il Sig. Rossi è arrivato. Vedi pag. 12 ecc.", "it", ["Il Sig. Rossi è arrivato.", "Vedi pag. 12 ecc."]),
        ("O Sr. Silva chegou. A Dra. Costa também.", "pt", ["O Sr. Silva chegou.", "A Dra. Costa também."]),
        (
            "Dhr. Jansen kwam om 10 uur. Hij zei o.a. dat het goed ging.",
            "nl",
            ["Dhr. Jansen kwam om 10 uur.", "Hij zei o.a. dat het goed ging."],
        ),
        (
            "Prof. Kowalski mieszka przy ul. Długiej 5. To jest np. ważne.",
            "pl",
            ["Prof. Kowalski mieszka przy ul. Długiej 5.", "To jest np. ważne."],
        ),
    ],
)
def test_european_rules(text, lang, expected):
    assert split_sentences(text, lang=lang) == expected


def test_language_codes_are_normalised():
    text = "Am 3. Oktober kam er. Dann ging er."
    assert (
        split_sentences(text, lang="de-DE")
        == split_sentences(text, lang="de")
        == ["Am 3. Oktober kam er.", "Dann ging er."]
    )
    assert split_sentences("Done. Next one.", lang="xx-unknown") == ["Done.", "Next one."]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("数学是利用符号语言研究数量、结构、变化以及空间等概念的一门学科。", "zh"),
        ("今日はとても良い天気ですね。明日も晴れるでしょう。", "ja"),
        ("Москва — столица России. Это крупнейший город страны.", "ru"),
        ("Der Hund läuft über die Straße und die Katze schläft in dem Haus.", "de"),
        ("Le chat dort dans la maison et le chien est dans le jardin avec les enfants.", "fr"),
        ("El perro corre por la calle y el gato duerme en la casa de los vecinos.", "es"),
        ("The dog runs across the street and the cat sleeps in the house.", "en"),
    ],
)
def test_guess_language(text, lang):
    assert guess_language(text) == lang


def test_auto_language_uses_the_guess():
    assert split_sentences("Am 3. Oktober kam er nach Hause. Dann ging er.", lang="auto") == [
        "Am 3. Oktober kam er nach Hause.",
        "Dann ging er.",
    ]
    assert split_sentences("他来了。她走了。", lang="auto") == ["他来了。", "她走了。"]


# --------------------------------------------------------------------------- line breaks

WRAPPED = "The committee met on\nTuesday to discuss the budget. It\nagreed on nothing.\nHistory\nThe town was founded in 1820.\n\nA new paragraph"


def test_line_breaks_sentence_mode():
    assert split_sentences(WRAPPED, line_breaks="sentence") == [
        "The committee met on",
        "Tuesday to discuss the budget.",
        "It",
        "agreed on nothing.",
        "History",
        "The town was founded in 1820.",
        "A new paragraph",
    ]


def test_line_breaks_space_mode():
    assert split_sentences(WRAPPED, line_breaks="space") == [
        "The committee met on Tuesday to discuss the budget.",
        "It agreed on nothing.",
        "History The town was founded in 1820.",
        "A new paragraph",
    ]


def test_line_breaks_auto_mode():
    assert split_sentences(WRAPPED) == [
        "The committee met on",
        "Tuesday to discuss the budget.",
        "It agreed on nothing.",
        "History",
        "The town was founded in 1820.",
        "A new paragraph",
    ]


def test_auto_mode_joins_continuations():
    text = "This line goes on\nand on, (really)\n, until the end.\nI met Mr.\nSmith there."
    assert split_sentences(text) == ["This line goes on and on, (really) , until the end.", "I met Mr. Smith there."]


def test_bert_sample_format_is_one_sentence_per_line():
    text = "This text is included to make sure Unicode is handled properly: 力加勝北区ᴵᴺᵀᵃছজটডণত\nText should be one-sentence-per-line, with empty lines between documents.\n\nThis sample text is public domain and was randomly selected from Project Guttenberg."
    assert split_sentences(text, line_breaks="sentence") == [
        "This text is included to make sure Unicode is handled properly: 力加勝北区ᴵᴺᵀᵃছজটডণত",
        "Text should be one-sentence-per-line, with empty lines between documents.",
        "This sample text is public domain and was randomly selected from Project Guttenberg.",
    ]


@pytest.mark.parametrize("mode", ["auto", "sentence", "space"])
def test_blank_line_is_always_a_boundary(mode):
    assert split_sentences("A heading without a stop\n\n  \nthe next paragraph starts lowercase", line_breaks=mode) == [
        "A heading without a stop",
        "the next paragraph starts lowercase",
    ]


@pytest.mark.parametrize("mode", ["auto", "sentence", "space"])
def test_other_line_separators(mode):
    assert split_sentences("One.\r\n\r\nTwo.\u2029Three", line_breaks=mode) == ["One.", "Two.", "Three"]


def test_bad_line_break_mode():
    with pytest.raises(ValueError, match="line_breaks"):
        split_sentences("Text.", line_breaks="newline")


# --------------------------------------------------------------------------- edge cases and properties


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\t \u3000 \n"])
def test_empty_or_blank_input(text):
    assert split_sentences(text) == []


def test_text_without_punctuation_is_one_sentence():
    assert split_sentences("no punctuation at all here") == ["no punctuation at all here"]


def test_sentences_never_contain_line_breaks():
    for mode in ("auto", "space", "sentence"):
        for sentence in split_sentences(WRAPPED, line_breaks=mode):
            assert "\n" not in sentence and sentence == sentence.strip() and sentence


_ALPHABET = st.sampled_from(
    list("abcXYZ019 .!?…。！？」”“「\"'()[]:;-,\n\t\u3000•")
    + ["Mr.", "e.g.", "U.S.", "1.", "2)", " . . . ", ":)", "\r\n", "数学", "Σ"]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_ALPHABET, max_size=60).map("".join),
    st.sampled_from(["en", "de", "fr", "zh", "ja", "ru", "auto", "pt"]),
    st.sampled_from(["auto", "sentence", "space"]),
)
def test_nothing_is_lost(text, lang, mode):
    sentences = split_sentences(text, lang=lang, line_breaks=mode)
    assert _nonspace("".join(sentences)) == _nonspace(text)
    assert all(s and s == s.strip() and "\n" not in s for s in sentences)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["auto", "sentence", "space"]))
def test_nothing_is_lost_on_arbitrary_unicode(text, mode):
    sentences = split_sentences(text, lang="en", line_breaks=mode)
    assert _nonspace("".join(sentences)) == _nonspace(text)


def test_deterministic_and_order_preserving():
    text = "First one. Second one? Third one! 第四句。"
    assert split_sentences(text) == split_sentences(text) == ["First one.", "Second one?", "Third one!", "第四句。"]


@pytest.mark.skipif(not EWT_DEV.exists(), reason="shared EWT dev data not present")
def test_ewt_dev_beats_pysbd_f1():
    tp = predicted = gold = 0
    for line in EWT_DEV.open(encoding="utf-8"):
        doc = json.loads(line)
        text = doc["text"]
        positions = [i for i, ch in enumerate(text) if not ch.isspace()]
        spans, k = set(), 0
        for sentence in split_sentences(text):
            n = len(_nonspace(sentence))
            spans.add((positions[k], positions[k + n - 1] + 1))
            k += n
        truth = {tuple(span) for span in doc["sentence_spans"]}
        tp += len(spans & truth)
        predicted += len(spans)
        gold += len(truth)
    assert 2 * tp / (predicted + gold) > 0.81
