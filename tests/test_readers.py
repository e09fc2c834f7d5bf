import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from corpusgen import readers
from corpusgen.config import BuildConfig


def text_docs(data: bytes, **cfg):
    counts = Counter()
    return list(readers.read_text_documents(io.BytesIO(data), BuildConfig(**cfg), counts)), counts


def jsonl_docs(data: bytes, **cfg):
    counts = Counter()
    return list(readers.read_jsonl_documents(io.BytesIO(data), BuildConfig(**cfg), counts)), counts


def test_blank_lines_separate_documents():
    docs, counts = text_docs(b"A one.\nA two.\n\n \n\nB one.\n")
    assert docs == ["A one.\nA two.", "B one."]
    assert counts == Counter()


def test_doc_per_file_keeps_paragraphs():
    docs, _ = text_docs(b"P one.\n\nP two.\n", doc_per_file=True)
    assert docs == ["P one.\n\nP two."]


def test_wikitext_headings_cut_documents_and_are_counted():
    data = b" = Valkyria = \n \n Senjo no Valkyria is a game .\n \n = = Gameplay = = \n \n Play it .\n = Second = \n \n Text .\n"
    docs, counts = text_docs(data, wikitext_headings=True)
    assert [d.split() for d in docs] == [
        ["Senjo", "no", "Valkyria", "is", "a", "game", ".", "Play", "it", "."],
        ["Text", "."],
    ]
    assert counts[readers.WIKITEXT_HEADING_LINES] == 3


def test_invalid_utf8_drops_only_that_document():
    data = "Grüße aus Köln.\n\nBad ".encode() + b"\xff\xfe" + " doc.\n\nAnother good, naïve café.\n".encode()
    docs, counts = text_docs(data)
    assert docs == ["Grüße aus Köln.", "Another good, naïve café."]
    assert counts == Counter({readers.INVALID_UTF8: 1})
    # with --encoding utf-8 even a lone bad byte in ASCII text is invalid UTF-8, not a legacy code page
    docs, counts = text_docs(b"Good doc.\n\nBad \xff doc.\n", encoding="utf-8")
    assert docs == ["Good doc."] and counts == Counter({readers.INVALID_UTF8: 1})


def test_legacy_encodings_are_decoded_not_dropped():
    text = (
        "Le cœur a ses raisons que la raison ne connaît point. On le sait en mille choses.\n"
        "Déjà, l’été dernier, nous étions à côté de la forêt, près du château où vécut l’écrivain.\n"
        "Ça n’a rien d’étonnant : la société française garde ses traditions et ses fêtes.\n"
    )
    docs, counts = text_docs((text * 5).encode("cp1252"))
    assert docs == [(text * 5).strip()]
    assert counts == Counter({readers.LEGACY_ENCODING_FILES: 1})
    ru = "Москва - столица России, крупнейший по численности населения город страны.\n"
    docs, _ = text_docs((ru * 30).encode("koi8-r"))
    assert docs == [(ru * 30).strip()]
    docs, _ = text_docs("Ça marche.\n".encode("latin-1"), encoding="latin-1")
    assert docs == ["Ça marche."]
    zh = "北京是中华人民共和国的首都，也是全国的政治和文化中心。\n"
    docs, _ = text_docs((zh * 40).encode("gb18030"))
    assert docs == [(zh * 40).strip()]


def test_html_file_is_one_document_decoded_by_meta_charset():
    page = '<html><head><meta charset="windows-1251"></head><body><p>Привет, мир.</p></body></html>'
    counts = Counter()
    docs = list(readers.read_html_document(io.BytesIO(page.encode("cp1251")), BuildConfig(), counts))
    assert docs == [page] and counts == Counter({readers.LEGACY_ENCODING_FILES: 1})


def test_binary_and_empty_files_are_counted():
    assert text_docs(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")[1] == Counter({readers.BINARY_FILE: 1})
    assert text_docs(b"")[1] == Counter({readers.EMPTY_FILE: 1})
    assert jsonl_docs(b"")[1] == Counter({readers.EMPTY_FILE: 1})


def test_utf16_with_bom_is_read():
    docs, counts = text_docs("Grüße aus Köln.\n\nZweites.\n".encode("utf-16"))
    assert docs == ["Grüße aus Köln.", "Zweites."]


def test_multi_megabyte_line_is_skipped_with_bounded_memory():
    big = b"x" * (3 << 20)
    docs, counts = text_docs(b"Before.\n\n" + big + b"\n\nAfter.\n", max_line_bytes=1 << 20)
    assert docs == ["Before.", "After."]
    assert counts == Counter({readers.LINE_TOO_LONG: 1})
    lines = list(readers.iter_lines(io.BytesIO(b"a\n" + big), 1 << 20, counts))
    assert lines == [b"a"] and counts[readers.LINE_TOO_LONG] == 2


def test_iter_lines_across_block_boundaries():
    data = b"\n".join(b"line %d" % i for i in range(300_000))
    lines = list(readers.iter_lines(io.BytesIO(data), 1 << 20, Counter()))
    assert len(lines) == 300_000 and lines[123_456] == b"line 123456"


def test_jsonl_bad_records_counted_by_reason():
    data = b"\n".join(
        [
            json.dumps({"text": "Fine document."}).encode(),
            b"{not json",
            b"[1, 2]",
            json.dumps({"body": "x"}).encode(),
            json.dumps({"text": 42}).encode(),
            json.dumps({"text": None}).encode(),
            b'{"text": "bad \xff utf8"}',
            b"",
            json.dumps({"content": "Other field."}).encode(),
        ]
    )
    docs, counts = jsonl_docs(data)
    assert docs == ["Fine document."]
    assert counts == Counter(
        {
            readers.MALFORMED_JSON: 2,
            readers.MISSING_TEXT_FIELD: 3,
            readers.NON_STRING_TEXT: 1,
            readers.INVALID_UTF8: 1,
        }
    )
    assert jsonl_docs(data, text_field="content")[0] == ["Other field."]


def test_document_too_long():
    docs, counts = jsonl_docs(json.dumps({"text": "y" * 5000}).encode(), max_document_chars=1000)
    assert docs == [] and counts == Counter({readers.DOCUMENT_TOO_LONG: 1})


def test_formats_by_name():
    cfg = BuildConfig()
    assert readers.detect_format("gs://b/x/part-1.jsonl.gz", cfg) == "jsonl"
    assert readers.detect_format("data.parquet", cfg) == "parquet"
    assert readers.detect_format("d/data-00000-of-00001.arrow", cfg) == "arrow"
    assert readers.detect_format("wiki.train.raw.bz2", cfg) == "text"
    assert readers.detect_format("x.txt", BuildConfig(input_format="jsonl")) == "jsonl"


def test_parquet_and_arrow_tables(tmp_path):
    table = pa.table({"id": [1, 2, 3], "text": ["First doc.", None, "Third doc."]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pa.ipc.new_file(str(tmp_path / "f.arrow"), table.schema) as w:
        w.write_table(table)
    with pa.ipc.new_stream(str(tmp_path / "s.arrow"), table.schema) as w:
        w.write_table(table)
    for name, fmt in (("t.parquet", "parquet"), ("f.arrow", "arrow"), ("s.arrow", "arrow")):
        counts = Counter()
        docs = list(readers.read_table_documents(str(tmp_path / name), fmt, BuildConfig(), counts))
        assert docs == ["First doc.", "Third doc."], name
        assert counts == Counter({readers.MISSING_TEXT_FIELD: 1})
    counts = Counter()
    assert (
        list(
            readers.read_table_documents(str(tmp_path / "t.parquet"), "parquet", BuildConfig(text_field="body"), counts)
        )
        == []
    )
    assert counts == Counter({readers.MISSING_TEXT_FIELD: 1})


def test_hf_save_to_disk_folder(tmp_path):
    datasets = __import__("pytest").importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["One.", "Two."]})
    ds.save_to_disk(str(tmp_path / "ds"))
    files = readers.expand_hf_dataset_dir(str(tmp_path / "ds"))
    assert files and all(f.endswith(".arrow") for f in files)
    docs = [d for f in files for d in readers.read_table_documents(f, "arrow", BuildConfig(), Counter())]
    assert docs == ["One.", "Two."]
    dd = datasets.DatasetDict({"train": ds, "validation": ds})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(readers.expand_hf_dataset_dir(str(tmp_path / "dd"))) == 2
    assert readers.expand_hf_dataset_dir(str(tmp_path)) is None


def test_compression_suffixes():
    # Decompression itself is Beam's (FileSystems.open picks it by suffix); see tests/pipelines.
    assert readers.strip_compression_suffix("a.jsonl.zst") == "a.jsonl"
    assert readers.strip_compression_suffix("b.txt.BZ2") == "b.txt"
    assert readers.strip_compression_suffix("c.parquet") == "c.parquet"
