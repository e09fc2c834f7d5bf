import codecs
import io
import json
import random
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusgen.encoding import (
    BINARY,
    UNDECODABLE,
    DecodeError,
    decode_bytes,
    fix_mojibake,
    looks_binary,
    normalize_encoding,
    sniff_declared_encoding,
    sniff_unicode,
)

SHARED_WEB = Path(__file__).resolve().parents[3] / "shared" / "data" / "web"

# Short texts written for these tests, a few sentences each: enough for detection to be unambiguous.
RUSSIAN = (
    "Вчера вечером в городской библиотеке прошла встреча с местными писателями. Они рассказали о своих новых "
    "книгах, ответили на вопросы читателей и подписали несколько десятков экземпляров. Следующая встреча "
    "запланирована на конец месяца, вход свободный."
)
GREEK = (
    "Η δημοτική βιβλιοθήκη θα παραμείνει κλειστή τη Δευτέρα λόγω εργασιών συντήρησης. Οι αναγνώστες μπορούν "
    "να επιστρέψουν τα βιβλία τους στο κουτί δίπλα στην είσοδο, το οποίο ελέγχεται καθημερινά."
)
JAPANESE = (
    "昨日の夜、市立図書館で地元の作家との交流会が開かれました。作家たちは新しい本について話し、読者の質問に"
    "答えて、数十冊の本にサインをしました。次の交流会は月末に予定されています。入場は無料です。"
)
CHINESE = (
    "昨天晚上，市立图书馆举办了一场与本地作家的见面会。作家们介绍了自己的新书，回答了读者的提问，"
    "并为几十本书签了名。下一次见面会定于月底举行，欢迎大家免费参加。"
)
CZECH = (
    "Včera večer se v městské knihovně konalo setkání s místními spisovateli. Představili své nové knihy, "
    "odpověděli na otázky čtenářů a podepsali několik desítek výtisků. Příští setkání je naplánováno na konec "
    "měsíce a vstup je zdarma. Šťastné čtení přeje celý tým knihovny."
)
FRENCH = (
    "Hier soir, la bibliothèque municipale a accueilli une rencontre avec des écrivains de la région. Ils ont "
    "présenté leurs nouveaux livres, répondu aux questions des lecteurs et dédicacé plusieurs dizaines "
    "d’exemplaires. La prochaine rencontre aura lieu à la fin du mois ; l’entrée est gratuite."
)


def test_utf8_fast_path():
    assert decode_bytes("naïve café — ok".encode()) == ("naïve café — ok", "utf-8")
    assert decode_bytes(b"") == ("", "utf-8")
    assert decode_bytes(b"plain ascii") == ("plain ascii", "utf-8")


@pytest.mark.parametrize(
    ("codec", "bom", "name"),
    [
        ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16-le"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16-be"),
        ("utf-32-le", codecs.BOM_UTF32_LE, "utf-32-le"),
        ("utf-32-be", codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_byte_order_marks_decide_and_are_stripped(codec, bom, name):
    assert decode_bytes(bom + FRENCH.encode(codec)) == (FRENCH, name)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_bom_are_recognised_not_called_binary(codec):
    data = ("Date,Bid,Ask\r\n2024-01-02,1.0921,1.0923\r\n" + FRENCH).encode(codec)
    assert not looks_binary(data)
    assert decode_bytes(data) == ("Date,Bid,Ask\r\n2024-01-02,1.0921,1.0923\r\n" + FRENCH, codec)


@pytest.mark.parametrize(
    ("text", "codec", "expected_name"),
    [
        (RUSSIAN, "cp1251", "cp1251"),
        (RUSSIAN, "koi8-r", "koi8-r"),
        (GREEK, "cp1253", "cp1253"),
        (JAPANESE, "shift_jis", None),
        (JAPANESE, "euc_jp", None),
        (CHINESE, "gb18030", None),
        (CZECH, "cp1250", "cp1250"),
        (FRENCH, "cp1252", "cp1252"),
    ],
)
def test_undeclared_legacy_encodings_are_detected(text, codec, expected_name):
    decoded, name = decode_bytes(text.encode(codec))
    assert decoded == text
    if expected_name:
        assert name == expected_name


def test_declared_encoding_wins_over_detection():
    # Latin-1 bytes of French could be read many ways; the caller's declaration settles it.
    assert decode_bytes(FRENCH.replace("’", "'").encode("latin-1"), declared="latin-1")[0] == FRENCH.replace("’", "'")
    assert decode_bytes(RUSSIAN.encode("koi8-r"), declared="KOI8-R") == (RUSSIAN, "koi8-r")


def test_declared_encoding_that_does_not_decode_falls_back_to_detection():
    text, name = decode_bytes(RUSSIAN.encode("cp1251"), declared="utf-8")
    assert (text, name) == (RUSSIAN, "cp1251")


def test_valid_utf8_outranks_a_wrong_declaration():
    assert decode_bytes(RUSSIAN.encode("utf-8"), declared="cp1251") == (RUSSIAN, "utf-8")


def test_html_meta_charset_is_used():
    page = f'<html><head><meta charset="windows-1251"><title>t</title></head><body><p>{RUSSIAN}</p></body></html>'
    assert decode_bytes(page.encode("cp1251")) == (page, "cp1251")
    old = f'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"><p>{JAPANESE}</p>'
    assert decode_bytes(old.encode("shift_jis")) == (old, "shift_jis")


def test_iso_8859_1_label_reads_c1_bytes_as_windows_1252_punctuation():
    page = '<meta charset="iso-8859-1"><p>\x93Quoted\x94 \x96 dash</p>'.encode("latin-1")
    assert decode_bytes(page) == ('<meta charset="iso-8859-1"><p>“Quoted” – dash</p>', "cp1252")


def test_xml_declaration_is_used():
    feed = f'<?xml version="1.0" encoding="euc-jp"?>\n<feed><title>{JAPANESE}</title></feed>'
    assert decode_bytes(feed.encode("euc_jp")) == (feed, "euc_jp")
    assert sniff_declared_encoding(feed.encode("euc_jp")) == "euc_jp"


def test_meta_declaring_utf16_in_ascii_bytes_is_ignored():
    page = f'<meta charset="utf-16"><p>{FRENCH}</p>'
    assert decode_bytes(page.encode("cp1252"))[0] == page


def test_iso_2022_jp_is_not_mistaken_for_ascii():
    data = JAPANESE.encode("iso2022_jp")
    assert data.isascii()
    assert decode_bytes(data) == (JAPANESE, "iso2022_jp")


@pytest.mark.parametrize(
    "head",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(200),
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"\x1f\x8b\x08\x00" + bytes(range(256)),
        b"PK\x03\x04\x14\x00\x06\x00",
        b"\x7fELF\x02\x01\x01" + bytes(100),
        bytes(range(32)) * 20,
    ],
)
def test_binary_is_refused(head):
    assert looks_binary(head)
    with pytest.raises(DecodeError) as err:
        decode_bytes(head)
    assert err.value.reason == BINARY


def test_text_is_not_binary():
    assert not looks_binary(b"")
    assert not looks_binary(FRENCH.encode("utf-8"))
    assert not looks_binary(RUSSIAN.encode("cp1251"))
    assert not looks_binary(codecs.BOM_UTF16_LE + FRENCH.encode("utf-16-le"))
    assert not looks_binary(b"line one\r\n\tindented\x0cpage two\n")


def test_random_high_bytes_are_undecodable_not_replacement_characters():
    data = random.Random(7).randbytes(4000)
    data = bytes(b | 0x80 for b in data)  # no NULs or controls: it is not "binary", it is garbage
    with pytest.raises(DecodeError) as err:
        decode_bytes(data)
    assert err.value.reason == UNDECODABLE


def test_utf8_bom_with_invalid_utf8_is_undecodable():
    with pytest.raises(DecodeError) as err:
        decode_bytes(codecs.BOM_UTF8 + b"ok \xff\xfe\xfd broken")
    assert err.value.reason == UNDECODABLE


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_never_invents_replacement_characters(data):
    try:
        text, _ = decode_bytes(data)
    except DecodeError as err:
        assert err.reason in (BINARY, UNDECODABLE)
        return
    if "\ufffd" in text:
        assert b"\xef\xbf\xbd" in data or b"\xfd\xff" in data or b"\xff\xfd" in data


def test_nul_bytes_outside_utf16_32_mean_binary_as_in_git():
    with pytest.raises(DecodeError) as err:
        decode_bytes(b"text with a stray \x00 inside")
    assert err.value.reason == BINARY


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200))
def test_any_utf8_text_without_nul_round_trips(text):
    assert decode_bytes(text.encode("utf-8"))[0] in (text, text.removeprefix("\ufeff"))


def test_normalize_encoding():
    assert normalize_encoding("Windows-1252") == "cp1252"
    assert normalize_encoding(" latin1 ") == "iso8859-1"
    assert normalize_encoding("x-sjis") == "shift_jis"
    with pytest.raises(ValueError, match="unknown encoding 'klingon-8'"):
        normalize_encoding("klingon-8")


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("voilÃ  le travail", "voilà le travail"),
        ("The cafÃ© was Ã©lÃ©gant", "The café was élégant"),
        ("â€œQuotedâ€\x9d and dashed â€” text", "“Quoted” and dashed — text"),
        ("Ð\x9fÑ€Ð¸Ð²ÐµÑ‚", "Привет"),
        ("Terminal \x1b[31mred\x1b[0m text", "Terminal red text"),
    ],
)
def test_fix_mojibake_repairs(broken, fixed):
    assert fix_mojibake(broken) == fixed


@pytest.mark.parametrize("clean", [FRENCH, RUSSIAN, JAPANESE, "It’s “curly” – keep it.", "plain ascii", "1 × 2 ÷ 3"])
def test_fix_mojibake_leaves_correct_text_alone(clean):
    assert fix_mojibake(clean) == clean


def _chardet_sample():
    raw = SHARED_WEB / "chardet_sample_raw.tar.gz"
    labels = SHARED_WEB / "chardet_sample_decoded.jsonl"
    if not (raw.exists() and labels.exists()):
        pytest.skip("shared chardet sample not available")
    ref = {}
    with labels.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ref[row["path"]] = row
    with tarfile.open(raw) as tf:
        for member in tf.getmembers():
            if member.isfile():
                yield member.name, tf.extractfile(member).read(), ref[member.name]


def test_chardet_sample_accuracy():
    """Real legacy-encoded files (chardet's test corpus): the decoded text must equal the reference,
    and a file in an encoding Python cannot decode (EUC-TW) must be refused, not mangled."""
    correct = total = 0
    for _, data, ref in _chardet_sample():
        total += 1
        try:
            text, _ = decode_bytes(data)
        except DecodeError:
            text = None
        if ref["n_replacement_chars"]:
            correct += text is None
        else:
            correct += text == ref["text"]
    assert total == 51
    assert correct >= 50  # the one miss: MacRoman with a single non-ASCII byte in 750 kB of ASCII


def test_fix_mojibake_on_ftfy_cases():
    path = SHARED_WEB / "ftfy_mojibake_synthetic_negative.jsonl"
    if not path.exists():
        pytest.skip("shared ftfy cases not available")

    def uncurl(s: str) -> str:  # we keep curly quotes on purpose; ftfy's expectations straighten them
        return s.translate(str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"}))

    rows = [json.loads(line) for line in io.StringIO(path.read_text(encoding="utf-8"))]
    assert all(uncurl(fix_mojibake(r["original"])) == uncurl(r["fixed"]) for r in rows)


def test_binary_needs_evidence_a_text_file_cannot_show():
    text = ("A line of ordinary text in a file.\n" * 200).encode()
    assert not looks_binary(text[:3000] + b"\x00" + text[3000:])  # one stray NUL: a damaged record, not a binary file
    assert looks_binary(text[:3000] + bytes(600) + text[3000:])  # ~8% NULs: no text has that many
    assert not looks_binary(FRENCH.encode("utf-16-le"))  # UTF-16 without a BOM: NULs at fixed offsets
    assert sniff_unicode(FRENCH.encode("utf-16-le")) == ("utf-16-le", 0)
    assert sniff_unicode(codecs.BOM_UTF8 + b"x") == ("utf-8-sig", 3)
    assert sniff_unicode(b"plain") is None


@pytest.mark.parametrize("codec", ["base64", "hex", "zlib_codec", "rot13", "punycode", "idna"])
def test_an_encoding_that_is_no_encoding_of_text_files_is_refused_before_any_work(codec):
    from corpusgen.config import BuildConfig

    with pytest.raises(ValueError, match=rf"--encoding {codec}: .* is no encoding of text files; use a text encoding"):
        BuildConfig(encoding=codec)
    assert BuildConfig(encoding="cp1252").encoding == "cp1252"
