"""Fuzzing the readers and the text steps: nothing raises, and the counts add up.

For every input: records read = documents read + records dropped, each document is valid
Unicode without NULs, and a compressed stream cut anywhere yields a prefix of its documents.
Cases these found are kept as explicit regression tests at the bottom.
"""

import bz2
import gzip
import io
import json
import lzma
import zlib
from collections import Counter

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusgen import readers, stats
from corpusgen.clean import clean_document
from corpusgen.config import BuildConfig
from corpusgen.split import split_sentences

CFG = BuildConfig(max_line_bytes=1024, max_document_chars=300)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMPRESS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "zst": zstandard.ZstdCompressor().compress,
    "xz": lzma.compress,
    "deflate": zlib.compress,
}


def read(data: bytes, name: str, cfg: BuildConfig = CFG) -> tuple[list[str], Counter]:
    counts: Counter = Counter()
    docs = list(readers.read_documents(name, cfg, counts, lambda _: io.BytesIO(data)))
    assert counts[stats.FILES_READ] == 1
    assert counts[stats.DOCUMENTS_READ] == len(docs)
    assert counts[stats.RECORDS_READ] == len(docs) + sum(counts[r] for r in stats.RECORD_DROPS), counts
    for doc in docs:
        assert isinstance(doc, str) and "\x00" not in doc
        doc.encode("utf-8")  # valid Unicode: no lone surrogates
        assert len(doc) <= cfg.max_document_chars
    return docs, counts


# Bytes that look like text files often enough to reach the record-level code: text, JSON, controls.
text_bytes = st.one_of(
    st.binary(max_size=2000),
    st.lists(
        st.sampled_from(
            [b"\n", b"\n\n", b"word ", b"\xc3\xa9", b"\xff", b"\x00", b"\xed\xa0\x80", b'{"text": "a"}', b" = T = "]
        ),
        max_size=300,
    ).map(b"".join),
)


@FUZZ
@given(text_bytes, st.sampled_from(["a.txt", "a.jsonl", "a.html"]), st.sampled_from(["auto", "utf-8", "cp1252"]))
def test_any_bytes_in_any_format(data, name, enc):
    read(data, name, CFG.replace(encoding=enc))


@FUZZ
@given(text_bytes, st.booleans(), st.booleans())
def test_any_bytes_in_any_text_layout(data, doc_per_file, wikitext):
    read(data, "a.txt", CFG.replace(doc_per_file=doc_per_file and not wikitext, wikitext_headings=wikitext))


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# st.characters() yields lone surrogates (category Cs) only when asked, and rarely: JSON escapes
# represent them, so they are also drawn on purpose, with NULs and separators.
any_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.sampled_from(["\ud800", "\udfff", "\ud83d", "\x00", "é", "\n", "\u2029", "\ufeff"]),
    ),
    max_size=400,
)


tricky_text = st.text(
    alphabet=st.sampled_from(["\ud800", "\udfff", "\ud83d", "\ude00", "\x00", "é", "a", " ", "\n"]), max_size=20
)


@FUZZ
@given(
    st.lists(
        st.one_of(st.fixed_dictionaries({"text": tricky_text}), st.fixed_dictionaries({"text": any_text}), json_value),
        max_size=30,
    )
)
def test_random_json_lines(records):
    lines = [json.dumps(r).encode() for r in records]
    docs, counts = read(b"\n".join(lines), "a.jsonl")
    records = [json.loads(line) for line in lines]  # JSON joins an escaped high + low surrogate pair
    expected = [
        r["text"]
        for r, line in zip(records, lines)
        if len(line) <= CFG.max_line_bytes  # longer lines are dropped whole (line_too_long)
        and isinstance(r, dict)
        and isinstance(r.get("text"), str)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in r["text"])
        and "\x00" not in r["text"]
        and len(r["text"]) <= CFG.max_document_chars
    ]
    assert docs == expected


@FUZZ
@given(
    st.lists(st.text(alphabet="abc é\n", min_size=1, max_size=30), min_size=1, max_size=40),
    st.sampled_from(sorted(COMPRESS)),
    st.floats(0, 1),
)
def test_truncated_streams_of_each_codec(paragraphs, kind, where):
    lines = [json.dumps({"text": p}).encode() for p in paragraphs]
    data = COMPRESS[kind](b"\n".join(lines) + b"\n")
    cut = int(len(data) * where)
    docs, counts = read(data[:cut], f"a.jsonl.{kind}")
    whole = [p for p in paragraphs if len(p) <= CFG.max_document_chars]
    assert docs == whole[: len(docs)]  # a prefix: never a partial or invented record
    if cut < len(data) and cut > 0:
        assert counts[stats.TRUNCATED_FILE] + counts[stats.UNREADABLE_FILE] + counts[stats.EMPTY_FILE] == 1, counts
    if cut == len(data):
        assert docs == whole


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(sorted(COMPRESS)))
def test_garbage_in_every_codec(data, kind):
    read(data, f"a.txt.{kind}")
    read(COMPRESS[kind](data)[: len(data) // 2 + 1], f"a.txt.{kind}")


html_text = st.lists(
    st.sampled_from(
        ["<p>", "</p>", "<div>", "<br>", "&#xD800;", "&#0;", "&amp;", "Ã©", "\ud800", "\x00", "word. ", "\u2028"]
    ),
    max_size=60,
).map("".join)


@FUZZ
@given(
    text=st.one_of(any_text, html_text),
    html=st.sampled_from(["auto", "always", "never"]),
    form=st.sampled_from(["NFC", "NFKC"]),
)
def test_clean_split_tokenize_never_raise(wordpiece, text, html, form):
    counts: Counter = Counter()
    cleaned, reason = clean_document(text, BuildConfig(html=html, unicode_form=form), counts)
    assert (cleaned is None) != (reason is None)
    if cleaned is None:
        assert reason in stats.DROP_REASONS
        return
    cleaned.encode("utf-8")
    for lang in ("en", "zh"):
        sentences = split_sentences(cleaned, lang, "auto")
        wordpiece.encode(sentences)


# --- regression cases: the failures the issue reported, as the fuzzers above produce them -----------


def test_a_lone_surrogate_reaching_the_cleaner_is_dropped():
    # Readers drop such records; a caller passing text straight to clean_document gets the same answer
    # (the tokenizer cannot encode a surrogate: it crashed whole builds).
    counts: Counter = Counter()
    cleaned, reason = clean_document("\ud800 raw", BuildConfig(), counts)
    assert (cleaned, reason) == (None, stats.INVALID_UNICODE)


def test_a_lone_surrogate_in_json_costs_only_its_record():
    docs, counts = read(b'{"text": "ok one"}\n{"text": "\\ud800"}\n{"text": "ok two"}\n', "a.jsonl")
    assert docs == ["ok one", "ok two"] and counts[stats.INVALID_UNICODE] == 1


def test_a_truncated_zst_is_truncated_not_empty():
    data = COMPRESS["zst"](b"".join(b'{"text": "record %d"}\n' % i for i in range(5000)))
    docs, counts = read(data[: len(data) // 2], "a.jsonl.zst")
    assert counts[stats.TRUNCATED_FILE] == 1 and counts[stats.EMPTY_FILE] == 0
    assert docs == [f"record {i}" for i in range(len(docs))]


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_a_stream_cut_inside_its_header_is_truncated_not_empty(kind):
    data = COMPRESS[kind](b'{"text": "x"}\n')
    docs, counts = read(data[:3], f"a.jsonl.{kind}")
    assert docs == [] and counts[stats.TRUNCATED_FILE] + counts[stats.UNREADABLE_FILE] == 1
