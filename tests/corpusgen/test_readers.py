import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusgen import readers, stats
from corpusgen.config import BuildConfig


def balanced(docs: list[str], counts: Counter) -> Counter:
    """``counts`` without ``records_read``, after checking that records = documents + record drops."""
    counts = Counter(counts)
    records = counts.pop(stats.RECORDS_READ, 0)
    assert records == len(docs) + sum(counts[r] for r in stats.RECORD_DROPS), (records, docs, counts)
    return +counts


def _read(reader, data: bytes, **cfg):
    """A reader's documents and counts; a file it stops on counted by reason, as ``read_documents`` does."""
    counts, docs = Counter(), []
    try:
        docs.extend(reader(io.BytesIO(data), BuildConfig(**cfg), counts))
    except readers.StreamCut as exc:
        counts[exc.reason] += 1
    return docs, balanced(docs, counts)


def text_docs(data: bytes, **cfg):
    return _read(readers.read_text_documents, data, **cfg)


def jsonl_docs(data: bytes, **cfg):
    return _read(readers.read_jsonl_documents, data, **cfg)


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
    assert counts[stats.WIKITEXT_HEADING_LINES] == 3


def test_invalid_utf8_drops_only_that_document():
    data = "Grüße aus Köln.\n\nBad ".encode() + b"\xff\xfe" + " doc.\n\nAnother good, naïve café.\n".encode()
    docs, counts = text_docs(data)
    assert docs == ["Grüße aus Köln.", "Another good, naïve café."]
    assert counts == Counter({stats.INVALID_UTF8: 1})
    # with --encoding utf-8 even a lone bad byte in ASCII text is invalid UTF-8, not a legacy code page
    docs, counts = text_docs(b"Good doc.\n\nBad \xff doc.\n", encoding="utf-8")
    assert docs == ["Good doc."] and counts == Counter({stats.INVALID_UTF8: 1})


def test_legacy_encodings_are_decoded_not_dropped():
    text = (
        "Le cœur a ses raisons que la raison ne connaît point. On le sait en mille choses.\n"
        "Déjà, l’été dernier, nous étions à côté de la forêt, près du château où vécut l’écrivain.\n"
        "Ça n’a rien d’étonnant : la société française garde ses traditions et ses fêtes.\n"
    )
    docs, counts = text_docs((text * 5).encode("cp1252"))
    assert docs == [(text * 5).strip()]
    assert counts == Counter({stats.LEGACY_ENCODING_FILES: 1})
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
    assert docs == [page] and balanced(docs, counts) == Counter({stats.LEGACY_ENCODING_FILES: 1})


def test_binary_and_empty_files_are_counted():
    assert text_docs(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")[1] == Counter({stats.BINARY_FILE: 1})
    assert text_docs(b"")[1] == Counter({stats.EMPTY_FILE: 1})
    assert jsonl_docs(b"")[1] == Counter({stats.EMPTY_FILE: 1})


def test_utf16_with_bom_is_read():
    docs, counts = text_docs("Grüße aus Köln.\n\nZweites.\n".encode("utf-16"))
    assert docs == ["Grüße aus Köln.", "Zweites."]


def test_multi_megabyte_line_is_skipped_with_bounded_memory():
    big = b"x" * (3 << 20)
    docs, counts = text_docs(b"Before.\n\n" + big + b"\n\nAfter.\n", max_line_bytes=1 << 20)
    assert docs == ["Before.", "After."]
    assert counts == Counter({stats.LINE_TOO_LONG: 1})
    assert list(readers.iter_lines(io.BytesIO(b"a\n" + big), 1 << 20)) == [b"a", None]
    # a long line inside a document drops the document, never keeps it without the line
    docs, counts = text_docs(b"Before.\n\nOne.\n" + big + b"\nTwo.\n\nAfter.\n", max_line_bytes=1 << 20)
    assert docs == ["Before.", "After."] and counts == Counter({stats.LINE_TOO_LONG: 1})


def test_iter_lines_across_block_boundaries():
    data = b"\n".join(b"line %d" % i for i in range(300_000))
    lines = list(readers.iter_lines(io.BytesIO(data), 1 << 20))
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
            stats.MALFORMED_JSON: 2,
            stats.MISSING_TEXT_FIELD: 3,
            stats.NON_STRING_TEXT: 1,
            stats.INVALID_UTF8: 1,
        }
    )
    assert jsonl_docs(data, text_field="content")[0] == ["Other field."]


def test_document_too_long():
    docs, counts = jsonl_docs(json.dumps({"text": "y" * 5000}).encode(), max_document_chars=1000)
    assert docs == [] and counts == Counter({stats.DOCUMENT_TOO_LONG: 1})


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
        assert balanced(docs, counts) == Counter({stats.MISSING_TEXT_FIELD: 1})
    # a file without the column: each of its rows is a record without the field
    counts = Counter()
    path = str(tmp_path / "t.parquet")
    assert list(readers.read_table_documents(path, "parquet", BuildConfig(text_field="body"), counts)) == []
    assert balanced([], counts) == Counter({stats.MISSING_TEXT_FIELD: 3})
    counts = Counter()
    assert list(readers.read_table_documents(path, "parquet", BuildConfig(text_field="id"), counts)) == []
    assert balanced([], counts) == Counter({stats.NON_STRING_TEXT: 3})


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


def test_a_save_to_disk_folder_naming_files_outside_it_is_refused(tmp_path):
    import json

    (tmp_path / "outside.arrow").write_bytes(b"secret")
    ds = tmp_path / "ds"
    ds.mkdir()
    for name in ("../outside.arrow", str(tmp_path / "outside.arrow"), 7):
        (ds / "state.json").write_text(json.dumps({"_data_files": [{"filename": name}]}))
        with pytest.raises(ValueError, match="leads outside the dataset folder|is not a file name"):
            readers.expand_hf_dataset_dir(str(ds))
    (ds / "dataset_dict.json").write_text(json.dumps({"splits": ["../.."]}))
    with pytest.raises(ValueError, match=r"split '\.\./\.\.' lies outside the dataset folder"):
        readers.expand_hf_dataset_dir(str(ds))
    (ds / "dataset_dict.json").write_text(json.dumps({"splits": "train"}))
    with pytest.raises(ValueError, match=r"'splits' must be a list of split names, got 'train'"):
        readers.expand_hf_dataset_dir(str(ds))


def test_a_dataset_dict_whose_split_is_gone_is_refused_not_left_out(tmp_path):
    import shutil

    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["One. Two."]})
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    (tmp_path / "dd" / "test" / "state.json").unlink()
    with pytest.raises(ValueError, match=r"dataset_dict.json: split 'test' has no save_to_disk folder"):
        readers.expand_hf_dataset_dir(str(tmp_path / "dd"))
    shutil.rmtree(tmp_path / "dd" / "test")
    with pytest.raises(ValueError, match=r"split 'test' has no save_to_disk folder"):
        readers.expand_hf_dataset_dir(str(tmp_path / "dd"))


def test_a_dataset_dict_whose_split_is_the_folder_itself_is_refused(tmp_path):
    """A split of "." or "" (or a link back) read the index again without end: a RecursionError."""
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["One. Two."]})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    (tmp_path / "dd" / "train" / "up").symlink_to("..")
    for split in (".", "", "train/up"):
        (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", split]}))
        with pytest.raises(ValueError, match=rf"split '{split}' names the dataset folder itself, not a split in it"):
            readers.expand_hf_dataset_dir(str(tmp_path / "dd"))


def test_a_save_to_disk_folder_whose_data_file_is_gone_is_refused_not_left_out(tmp_path):
    """A shard gone was one unreadable_file in the build (or 'check --input-format' when alone)."""
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["One. Two.", "Three. Four."]}).save_to_disk(str(tmp_path / "ds"), num_shards=2)
    (tmp_path / "ds" / "data-00001-of-00002.arrow").unlink()
    with pytest.raises(
        ValueError, match=r"state.json: data file 'data-00001-of-00002.arrow' is missing \(or not a file\)"
    ):
        readers.expand_hf_dataset_dir(str(tmp_path / "ds"))


def test_compression_suffixes():
    assert readers.strip_compression_suffix("a.jsonl.zst") == "a.jsonl"
    assert readers.strip_compression_suffix("b.txt.BZ2") == "b.txt"
    assert readers.strip_compression_suffix("c.parquet") == "c.parquet"


# --- read_documents: the registry, compression, truncation -------------------------------------

JSONL = b"".join(json.dumps({"text": f"Document number {i} of the set."}).encode() + b"\n" for i in range(20000))
TEXT = b"".join(b"Paragraph %d, line one.\nParagraph %d, line two.\n\n" % (i, i) for i in range(4000))


def compress(kind: str, data: bytes) -> bytes:
    import bz2
    import gzip
    import lzma
    import zlib

    import zstandard

    return {
        "gz": gzip.compress,
        "bz2": bz2.compress,
        "zst": zstandard.ZstdCompressor().compress,
        "xz": lzma.compress,
        "deflate": zlib.compress,
    }[kind](data)


def read_file(path, **cfg):
    counts = Counter()
    docs = list(readers.read_documents(str(path), BuildConfig(**cfg), counts))
    assert counts[stats.FILES_READ] == 1 and counts.pop(stats.FILES_READ)
    assert counts.pop(stats.DOCUMENTS_READ, 0) == len(docs)
    return docs, balanced(docs, counts)


def test_registry_is_the_one_table_of_formats():
    assert readers.INPUT_FORMATS == ("auto", "text", "jsonl", "parquet", "arrow", "hf", "html")
    from corpusgen import config

    assert config.INPUT_FORMATS is readers.INPUT_FORMATS
    assert readers.detect_format("page.HTM.gz", BuildConfig()) == "html"
    assert readers.detect_format("x.unknown", BuildConfig()) == readers.DEFAULT_FORMAT == "text"
    assert readers.detect_format("d/data-00000.arrow", BuildConfig(input_format="hf")) == "hf"
    assert readers.FORMATS["hf"].table == "arrow"


@pytest.mark.parametrize("kind", ["gz", "bz2", "zst", "xz", "deflate"])
def test_compressed_inputs_are_read_whole(tmp_path, kind):
    (tmp_path / f"a.jsonl.{kind}").write_bytes(compress(kind, JSONL))
    docs, counts = read_file(tmp_path / f"a.jsonl.{kind}")
    assert len(docs) == 20000 and docs[-1] == "Document number 19999 of the set." and counts == Counter()


@pytest.mark.parametrize("kind", ["gz", "bz2", "zst", "xz"])  # (a zlib stream has one member)
def test_concatenated_members_and_frames_are_all_read(tmp_path, kind):
    half = len(JSONL) // 2 // 40 * 40
    half = JSONL.index(b"\n", half) + 1
    (tmp_path / f"a.jsonl.{kind}").write_bytes(compress(kind, JSONL[:half]) + compress(kind, JSONL[half:]))
    docs, counts = read_file(tmp_path / f"a.jsonl.{kind}")
    assert len(docs) == 20000 and counts == Counter()


@pytest.mark.parametrize("kind", ["gz", "bz2", "zst", "xz", "deflate"])
def test_truncated_jsonl_keeps_whole_records_only(tmp_path, kind):
    data = compress(kind, JSONL)
    for cut in (len(data) // 2, len(data) - 1):
        (tmp_path / f"a.jsonl.{kind}").write_bytes(data[:cut])
        docs, counts = read_file(tmp_path / f"a.jsonl.{kind}")
        assert counts == Counter({stats.TRUNCATED_FILE: 1}), cut
        assert docs == [f"Document number {i} of the set." for i in range(len(docs))]  # no partial last record
        # cut in the middle: records after the cut are lost; cut at the end: (nearly) all were whole
        if cut < len(data) - 1:  # bz2's one 900 kB block holds the whole file: nothing before the cut is whole
            assert 0 < len(docs) < 20000 or (kind == "bz2" and docs == [])
        else:
            assert len(docs) > 15000  # zstd loses its last block (up to 128 KiB), the others a few bytes


@pytest.mark.parametrize("kind", ["gz", "bz2", "zst", "xz", "deflate"])
def test_truncated_text_drops_the_partial_last_document(tmp_path, kind):
    data = compress(kind, TEXT)
    (tmp_path / f"a.txt.{kind}").write_bytes(data[: len(data) * 2 // 3])
    docs, counts = read_file(tmp_path / f"a.txt.{kind}")
    assert counts == Counter({stats.TRUNCATED_FILE: 1})
    assert docs == [f"Paragraph {i}, line one.\nParagraph {i}, line two." for i in range(len(docs))]
    # the cut fell inside the stream: everything decoded before it that formed whole documents is kept
    assert 0 < len(docs) < 4000 or kind == "bz2"


def test_truncated_html_page_is_not_kept(tmp_path):
    page = b"<html><body>" + b"<p>A paragraph of the page.</p>" * 2000 + b"</body></html>"
    (tmp_path / "p.html.gz").write_bytes(compress("gz", page)[:-20])
    assert read_file(tmp_path / "p.html.gz") == ([], Counter({stats.TRUNCATED_FILE: 1}))


def test_corrupt_compressed_stream_is_unreadable_and_keeps_what_came_before(tmp_path):
    data = compress("gz", JSONL)
    (tmp_path / "a.jsonl.gz").write_bytes(data[:100] + b"\x00garbage" * 40)
    docs, counts = read_file(tmp_path / "a.jsonl.gz")
    assert counts == Counter({stats.UNREADABLE_FILE: 1})
    assert docs == [f"Document number {i} of the set." for i in range(len(docs))]
    (tmp_path / "b.txt.zst").write_bytes(b"not zstd at all, just text\n")
    assert read_file(tmp_path / "b.txt.zst") == ([], Counter({stats.UNREADABLE_FILE: 1}))


def test_empty_compressed_file_is_empty_not_truncated(tmp_path):
    (tmp_path / "a.jsonl.zst").write_bytes(b"")
    (tmp_path / "b.txt.gz").write_bytes(compress("gz", b""))
    assert read_file(tmp_path / "a.jsonl.zst") == ([], Counter({stats.EMPTY_FILE: 1}))
    assert read_file(tmp_path / "b.txt.gz") == ([], Counter({stats.EMPTY_FILE: 1}))


def test_unopenable_file_is_counted(tmp_path):
    assert read_file(tmp_path / "missing.txt") == ([], Counter({stats.UNREADABLE_FILE: 1}))


def test_opener_is_a_seam(tmp_path):
    opened = []

    def opener(path):
        opened.append(path)
        return io.BytesIO(compress("zst", b'{"text": "From the opener."}\n'))

    counts = Counter()
    docs = list(readers.read_documents("gs://bucket/x.jsonl.zst", BuildConfig(), counts, opener))
    assert docs == ["From the opener."] and opened == ["gs://bucket/x.jsonl.zst"]


# --- text that is not valid Unicode, NUL bytes, binary evidence ------------------------------------


def test_lone_surrogates_are_dropped_per_record():
    data = b"\n".join(
        [
            b'{"text": "Good one."}',
            b'{"text": "lone \\ud800 high"}',
            b'{"text": "lone \\udfff low"}',
            b'{"text": "a pair \\ud83d\\ude00 is fine"}',
        ]
    )
    docs, counts = jsonl_docs(data)
    assert docs == ["Good one.", "a pair \U0001f600 is fine"]
    assert counts == Counter({stats.INVALID_UNICODE: 2})


def test_surrogates_encoded_as_bytes_are_invalid_utf8():
    # CESU-8/WTF-8 bytes of U+D800: not UTF-8, in every reader
    docs, counts = text_docs("Grüße.\n\n".encode() + b"bad \xed\xa0\x80 one\n\n" + "Über.\n".encode())
    assert docs == ["Grüße.", "Über."] and counts == Counter({stats.INVALID_UTF8: 1})
    # json.loads lets such bytes through as a surrogate: caught as invalid Unicode
    docs, counts = jsonl_docs(b'{"text": "Good."}\n{"text": "bad \xed\xa0\x80 one"}\n')
    assert docs == ["Good."] and counts == Counter({stats.INVALID_UNICODE: 1})


def test_invalid_strings_in_tables_cost_only_their_row(tmp_path):
    raw = pa.array([b"First doc.", b"bad \xed\xa0\x80 surrogate", b"bad \xff byte", b"nul \x00 here", b"Last."])
    # Arrow does not validate strings it is given: build the string array from the binary one's buffers
    arr = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    table = pa.table({"text": arr})
    with pa.ipc.new_file(str(tmp_path / "f.arrow"), table.schema) as w:
        w.write_table(table)
    counts = Counter()
    docs = list(readers.read_table_documents(str(tmp_path / "f.arrow"), "arrow", BuildConfig(), counts))
    assert docs == ["First doc.", "Last."]
    assert balanced(docs, counts) == Counter({stats.INVALID_UTF8: 2, stats.NUL_BYTE: 1})


def test_an_arrow_file_whose_offsets_point_past_its_data_is_damaged_not_a_crash(tmp_path):
    """Arrow trusts an IPC file's offsets: read unchecked, one pointing past the data crashed the build."""
    first, second = pa.table({"text": ["Kept one.", "Kept two."]}), pa.table({"text": ["Alpha one.", "Beta two."]})
    with pa.ipc.new_file(tmp_path / "f.arrow", first.schema) as w:
        w.write_table(first)
        w.write_table(second)
    data = (tmp_path / "f.arrow").read_bytes()
    offsets = pa.array([0, 10, 19], pa.int32()).buffers()[1].to_pybytes()
    assert data.count(offsets) == 1
    (tmp_path / "f.arrow").write_bytes(
        data.replace(offsets, pa.array([0, 1 << 30, 19], pa.int32()).buffers()[1].to_pybytes())
    )
    docs, counts = read_file(tmp_path / "f.arrow")
    assert docs == ["Kept one.", "Kept two."] and counts == Counter({stats.UNREADABLE_FILE: 1})
    table = pa.table({"text": pa.array(["One.", "Two.", "Three.", "One."]).dictionary_encode()})  # its indices too
    with pa.ipc.new_file(tmp_path / "d.arrow", table.schema) as w:
        w.write_table(table)
    data = (tmp_path / "d.arrow").read_bytes()
    indices = pa.array([0, 1, 2, 0], pa.int32()).buffers()[1].to_pybytes()
    assert data.count(indices) == 1
    (tmp_path / "d.arrow").write_bytes(
        data.replace(indices, pa.array([0, 1 << 30, 2, 0], pa.int32()).buffers()[1].to_pybytes())
    )
    assert read_file(tmp_path / "d.arrow") == ([], Counter({stats.UNREADABLE_FILE: 1}))


def test_a_damaged_parquet_row_group_keeps_the_row_groups_before_it(tmp_path):
    """Batches of 1024 rows spanned row groups: a damaged second group lost the intact first with it."""
    texts = [f"Document {i}. Its second sentence." for i in range(30)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "t.parquet", row_group_size=10, use_dictionary=False)
    chunk = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(1).column(0)
    data = bytearray((tmp_path / "t.parquet").read_bytes())
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[middle : middle + 8] = bytes(b ^ 0xA5 for b in data[middle : middle + 8])
    (tmp_path / "t.parquet").write_bytes(bytes(data))
    docs, counts = read_file(tmp_path / "t.parquet")
    assert docs == texts[:10] and counts == Counter({stats.UNREADABLE_FILE: 1})


def test_a_table_with_two_text_columns_is_named_not_a_logged_traceback(tmp_path, caplog):
    table = pa.table([pa.array(["One. Two."]), pa.array(["Three. Four."])], names=["text", "text"])
    pq.write_table(table, tmp_path / "t.parquet")
    with pa.ipc.new_file(tmp_path / "t.arrow", table.schema) as w:
        w.write_table(table)
    for name in ("t.parquet", "t.arrow"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="corpusgen"):
            assert read_file(tmp_path / name) == ([], Counter({stats.UNREADABLE_FILE: 1}))
        assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
            (f"{tmp_path / name}: 2 columns are named 'text'; skipped it (rename all but one)", None)
        ]


def test_a_compressed_table_file_is_named_with_the_fix(tmp_path, caplog):
    """pyarrow read a .parquet.gz's gzip bytes as Parquet: 'magic bytes not found ...; check --input-format'."""
    import gzip

    pq.write_table(pa.table({"text": ["One. Two."]}), tmp_path / "t.parquet")
    (tmp_path / "t.parquet.gz").write_bytes(gzip.compress((tmp_path / "t.parquet").read_bytes()))
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert read_file(tmp_path / "t.parquet.gz") == ([], Counter({stats.UNREADABLE_FILE: 1}))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 't.parquet.gz'}: not a readable Parquet file (gzip-compressed, and Parquet and Arrow files "
        "are read in place: decompress it); skipped it"
    ]


def test_an_arrow_file_cut_short_keeps_its_batches_before_the_cut(tmp_path):
    """An IPC file's footer is at its end: cut short, it was 'Not an Arrow file' and lost whole, where a
    cut stream or compressed file keeps what came before the cut."""
    texts = [f"Document {i}. Its second sentence." for i in range(100)]
    table = pa.table({"text": texts})
    with pa.ipc.new_file(tmp_path / "f.arrow", table.schema) as w:
        w.write_table(table, max_chunksize=25)
    data = (tmp_path / "f.arrow").read_bytes()
    (tmp_path / "f.arrow").write_bytes(data[: len(data) * 3 // 4])
    docs, counts = read_file(tmp_path / "f.arrow")
    assert docs == texts[: len(docs)] and 0 < len(docs) < 100 and len(docs) % 25 == 0
    assert counts == Counter({stats.UNREADABLE_FILE: 1})


def test_dictionary_encoded_text_column(tmp_path):
    table = pa.table({"text": pa.array(["One.", "Two.", "One."]).dictionary_encode()})
    pq.write_table(table, tmp_path / "d.parquet")
    docs, counts = read_file(tmp_path / "d.parquet")
    assert docs == ["One.", "Two.", "One."] and counts == Counter()


def test_one_nul_byte_costs_its_record_not_the_file():
    lines = [json.dumps({"text": f"Good document {i}."}).encode() for i in range(50)]
    lines[3] = b'{"text": "raw \x00 nul"}'
    lines[7] = b'{"text": "escaped \\u0000 nul"}'
    docs, counts = jsonl_docs(b"\n".join(lines))
    assert len(docs) == 48 and counts == Counter({stats.NUL_BYTE: 2})
    docs, counts = text_docs(b"Good one.\n\nBad \x00 one.\n\nGood two.\n")
    assert docs == ["Good one.", "Good two."] and counts == Counter({stats.NUL_BYTE: 1})


def test_binary_is_decided_on_evidence():
    assert text_docs(bytes(range(256)) * 100)[1] == Counter({stats.BINARY_FILE: 1})
    assert jsonl_docs(b"\x89PNG\r\n\x1a\n" + b'{"text": "x"}\n' * 10)[1] == Counter({stats.BINARY_FILE: 1})
    with pytest.raises(readers.StreamCut) as cut:  # a zip: an archive (read_documents counts it, says so)
        list(
            readers.read_jsonl_documents(io.BytesIO(b"PK\x03\x04" + b'{"text": "x"}\n' * 10), BuildConfig(), Counter())
        )
    assert cut.value.reason == stats.ARCHIVE_FILE and cut.value.whole_file
    assert jsonl_docs(b'{"text": "x"}\n' + bytes(4000) + b"\n")[1] == Counter({stats.BINARY_FILE: 1})
    # UTF-16 without a BOM has NULs everywhere and is text
    docs, counts = text_docs("Grüße aus Köln.\n\nZweites.\n".encode("utf-16-le"))
    assert docs == ["Grüße aus Köln.", "Zweites."]


def test_html_page_with_a_nul_is_dropped_as_a_record():
    counts = Counter()
    page = b"<html><body><p>Text \x00 here.</p></body></html>"
    assert list(readers.read_html_document(io.BytesIO(page), BuildConfig(), counts)) == []
    assert balanced([], counts) == Counter({stats.NUL_BYTE: 1})


def test_non_string_text_counts_add_up():
    docs, counts = jsonl_docs(b'{"text": 1}\n{"text": 2.5}\n{"text": [3]}\n')
    assert docs == [] and counts == Counter({stats.NON_STRING_TEXT: 3})


def test_a_file_lost_whole_is_named_in_a_warning(tmp_path, caplog):
    """Counted is not enough when a whole file goes: the warning names it and the fix."""
    (tmp_path / "content.jsonl").write_text('{"content": "One. Two."}\n{"content": "Three. Four."}\n')
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["One. Two."]}), good)
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:60])
    (tmp_path / "mixed.jsonl").write_text('{"content": "x"}\n{"text": "Kept. Here."}\n')
    counts = Counter()
    with caplog.at_level("WARNING", logger="corpusgen"):
        for name in ("content.jsonl", "cut.parquet", "mixed.jsonl", "good.parquet"):
            list(readers.read_documents(str(tmp_path / name), BuildConfig(), counts))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert (
        lines[0]
        == f"{tmp_path / 'content.jsonl'}: none of its 2 records has a string 'text' field; skipped it (set --text-field)"
    )
    assert lines[1].startswith(f"{tmp_path / 'cut.parquet'}: not a readable Parquet file (")
    assert (
        counts[stats.MISSING_TEXT_FIELD] == 3
        and counts[stats.UNREADABLE_FILE] == 1
        and counts[stats.DOCUMENTS_READ] == 2
    )


def test_a_gzip_whose_trailer_check_fails_keeps_all_it_decoded(tmp_path):
    """The check value is read after the last byte: only the trailer is bad, so all but the line being
    read when it fails is kept (a line an error cuts is never taken as whole)."""
    import gzip

    lines = "".join(f'{{"text": "Document {i} is here. It has two sentences."}}\n' for i in range(2000))
    data = bytearray(gzip.compress(lines.encode()))
    data[-8] ^= 0xFF  # the CRC-32 of the member
    (tmp_path / "bad-crc.jsonl.gz").write_bytes(bytes(data))
    counts = Counter()
    docs = list(readers.read_documents(str(tmp_path / "bad-crc.jsonl.gz"), BuildConfig(), counts))
    assert len(docs) == 1999 and docs[-1] == "Document 1998 is here. It has two sentences."
    assert counts[stats.UNREADABLE_FILE] == 1  # and it is still said


def test_a_compressed_file_whose_name_does_not_say_so_is_named_with_the_fix(tmp_path, caplog):
    import gzip

    (tmp_path / "corpus.jsonl").write_bytes(gzip.compress(b'{"text": "One. Two."}\n'))
    counts = Counter()
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert list(readers.read_documents(str(tmp_path / "corpus.jsonl"), BuildConfig(), counts)) == []
    assert counts[stats.BINARY_FILE] == 1
    path = tmp_path / "corpus.jsonl"
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: binary_file: holds gzip-compressed data; name it {path}.gz to read it; skipped it"
    ]


def test_archives_are_skipped_and_named_with_the_fix(tmp_path, caplog):
    """A tar (plain or compressed) or zip archive would read as one text, headers and all."""
    import gzip
    import tarfile
    import zipfile

    member = tmp_path / "a.txt"
    member.write_text("One sentence here. Another one there.\n")
    with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as tar:
        tar.add(member, arcname="a.txt")
    with tarfile.open(tmp_path / "c.tar", "w") as tar:
        tar.add(member, arcname="a.txt")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.write(member, "a.txt")
    (tmp_path / "members.jsonl.gz").write_bytes(gzip.compress((tmp_path / "c.tar").read_bytes()))
    for name in ("c.tar.gz", "c.tar", "c.zip", "members.jsonl.gz"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="corpusgen"):
            docs, counts = read_file(tmp_path / name)
        assert docs == [] and counts == Counter({stats.ARCHIVE_FILE: 1}), name
        (message,) = [r.getMessage() for r in caplog.records]
        assert message.startswith(f"{tmp_path / name}: archive_file: a ") and "extract it" in message


def test_files_of_nothing_but_whitespace_are_empty(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"\n\n\n")
    (tmp_path / "f.jsonl").write_bytes(b"   \n\t\n")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "g.parquet")
    for name in ("e.txt", "f.jsonl", "g.parquet"):
        assert read_file(tmp_path / name) == ([], Counter({stats.EMPTY_FILE: 1})), name


def test_string_view_and_binary_text_columns_are_read(tmp_path):
    texts = ["Grüße aus Köln. Zweiter Satz.", "Plain text. Two."]
    for name, column in {
        "view.parquet": pa.array(texts, pa.string_view()),
        "view.arrow": pa.array(texts, pa.string_view()),
        "bytes.parquet": pa.array([t.encode() for t in texts] + [b"\xff bad"], pa.binary()),
        "large.arrow": pa.array([t.encode() for t in texts], pa.large_binary()),
    }.items():
        table = pa.table({"text": column})
        if name.endswith(".parquet"):
            pq.write_table(table, tmp_path / name)
        else:
            with pa.ipc.new_file(tmp_path / name, table.schema) as w:
                w.write_table(table)
        docs, counts = read_file(tmp_path / name)
        assert docs == texts, name
        assert counts == (Counter({stats.INVALID_UTF8: 1}) if name == "bytes.parquet" else Counter()), name


def test_an_arrow_stream_is_read_by_its_suffix_and_named_when_misnamed(tmp_path, caplog):
    table = pa.table({"text": ["One. Two.", "Three. Four."]})
    with pa.ipc.new_stream(tmp_path / "s.arrows", table.schema) as w:
        w.write_table(table)
    assert read_file(tmp_path / "s.arrows") == (["One. Two.", "Three. Four."], Counter())
    (tmp_path / "s.data").write_bytes((tmp_path / "s.arrows").read_bytes())
    pq.write_table(table, tmp_path / "p.data")
    for name, kind in (("s.data", "arrow"), ("p.data", "parquet")):
        caplog.clear()
        with caplog.at_level("WARNING", logger="corpusgen"):
            assert read_file(tmp_path / name) == ([], Counter({stats.BINARY_FILE: 1}))
        assert [r.getMessage() for r in caplog.records] == [
            f"{tmp_path / name}: binary_file: {readers.TABLE_NAMES[kind]} file; name it *.{kind} or pass --input-format "
            f"{kind}; skipped it"
        ]


def test_a_huge_integer_elsewhere_in_a_record_does_not_drop_it():
    line = b'{"id": ' + b"9" * 5000 + b', "text": "One. Two."}\n'
    assert jsonl_docs(line + b'{"text": "Three."}\n') == (["One. Two.", "Three."], Counter())
    assert jsonl_docs(b'{"id": ' + b"9" * 5000 + b', "text": \n') == ([], Counter({stats.MALFORMED_JSON: 1}))


def test_utf16_named_without_a_byte_order_mark_is_one_line(tmp_path, caplog):
    (tmp_path / "c.txt").write_bytes(b"Plain ASCII text. Two.\n")
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert read_file(tmp_path / "c.txt", encoding="utf-16") == ([], Counter({stats.UNDECODABLE_FILE: 1}))
    (record,) = caplog.records
    assert record.exc_info is None and "--encoding utf-16-le" in record.getMessage()


def test_undecodable_files_are_named(tmp_path, caplog, monkeypatch):
    from corpusgen import encoding

    def no_codec(data):  # what the detector says of bytes no code page explains
        raise encoding.DecodeError(encoding.UNDECODABLE, "no candidate encoding decodes these bytes")

    monkeypatch.setattr(encoding, "decode_bytes", no_codec)
    (tmp_path / "u.txt").write_bytes(bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 800)
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert read_file(tmp_path / "u.txt") == ([], Counter({stats.UNDECODABLE_FILE: 1}))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'u.txt'}: undecodable_file: its bytes fit no text encoding (pass --encoding if you know "
        "it); skipped it"
    ]


def test_text_holding_ustar_where_a_tar_header_would_is_still_text():
    line = b'{"text": "' + b"a" * (257 - 10) + b'ustar custard. Second sentence."}\n'
    assert line[257:262] == b"ustar"
    assert jsonl_docs(line * 3)[0] == [json.loads(line)["text"]] * 3


def test_a_binary_file_is_named_in_a_warning(tmp_path, caplog):
    """The count alone did not say which of a glob's files was skipped as binary."""
    (tmp_path / "noise.txt").write_bytes(bytes(range(256)) * 40)
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert read_file(tmp_path / "noise.txt") == ([], Counter({stats.BINARY_FILE: 1}))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'noise.txt'}: binary_file: {readers.NOT_TEXT}; skipped it"
    ]


def test_a_feather_v1_file_gets_the_fix_not_a_metadata_length_error(tmp_path, caplog):
    """pyarrow read an old Feather file as an IPC stream: 'Expected to read 826361158 metadata bytes'."""
    import warnings

    import pyarrow.feather as feather

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pyarrow 25 deprecates writing V1
        feather.write_feather(pa.table({"text": ["One. Two."]}), tmp_path / "old.feather", version=1)
    with pytest.raises(pa.ArrowInvalid, match="Feather V1"):
        readers.table_schema(str(tmp_path / "old.feather"), "arrow")
    (tmp_path / "old.txt").write_bytes((tmp_path / "old.feather").read_bytes())
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert read_file(tmp_path / "old.txt") == ([], Counter({stats.BINARY_FILE: 1}))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'old.txt'}: binary_file: {readers.FEATHER_V1_FIX}; skipped it"
    ]


def test_text_that_starts_with_fea1_is_still_text(tmp_path):
    """Only 'FEA1' and its padding of NULs open a Feather V1 file; a text about the FEA1 gene is text."""
    data = b"FEA1 is a gene of plants. It encodes a protein.\n\nAnother document. It has two sentences.\n"
    (tmp_path / "genes.txt").write_bytes(data)
    docs, counts = read_file(tmp_path / "genes.txt")
    assert len(docs) == 2 and counts[stats.BINARY_FILE] == 0
    assert text_docs(data)[0] == docs


def test_an_undecodable_web_page_is_named_once_with_the_fix(tmp_path, caplog):
    page = tmp_path / "bad.html"
    page.write_bytes(b"\xef\xbb\xbf<html><body><p>bad \xff\xfe here.</p></body></html>")
    with caplog.at_level("WARNING", logger="corpusgen"):
        assert read_file(page, input_format="html") == ([], Counter({stats.UNDECODABLE_FILE: 1}))
    assert [r.getMessage() for r in caplog.records] == [
        f"{page}: undecodable_file: utf-8-sig byte-order mark but invalid utf-8-sig; pass --encoding if you know it; "
        "skipped it"
    ]


def test_a_file_with_no_text_is_named_once(tmp_path, caplog):
    """empty_file was a count without a name: which of a folder's files was it?"""
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_text("\n  \n\n")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "none.parquet")
    for name in ("empty.txt", "blank.jsonl", "none.parquet"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="corpusgen"):
            assert read_file(tmp_path / name) == ([], Counter({stats.EMPTY_FILE: 1}))
        assert [r.getMessage() for r in caplog.records] == [
            f"{tmp_path / name}: no text in it (empty, whitespace only, or a table of no rows); skipped it"
        ]
