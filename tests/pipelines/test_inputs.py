"""Input resolution and builds from damaged input: every fault counted by reason, none fatal."""

import gzip
import json
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from click.testing import CliRunner

from corpusgen import intermediate, stats
from corpusgen.clean import content_key
from corpusgen.cli import cli
from corpusgen.config import BuildConfig
from pipelines.inputs import InputError, check_inputs, leave_out_output, resolve_inputs
from pipelines.transforms import MAIN, STATS, MergeCounts, StagedVocab, TokenizeChunks, read_file


def test_hidden_files_are_skipped_counted_and_listed(tmp_path):
    for rel in ("a.txt", ".hidden.txt", ".git/config", ".git/objects/x", "sub/b.txt", "sub/.DS_Store"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("Some text.\n")
    skipped: dict = {}
    files = resolve_inputs([str(tmp_path)], BuildConfig(), skipped)
    assert files == [str(tmp_path / "a.txt"), str(tmp_path / "sub" / "b.txt")]
    assert sorted(skipped) == [stats.HIDDEN_FILE]
    assert sorted(skipped[stats.HIDDEN_FILE]) == [
        str(tmp_path / ".git") + "/",
        str(tmp_path / ".hidden.txt"),
        str(tmp_path / "sub" / ".DS_Store"),
    ]


def test_linked_folders_are_followed_and_a_loop_is_listed_not_walked(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x.txt").write_text("Text.\n")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Text.\n")
    (corpus / "link").symlink_to(real, target_is_directory=True)
    (corpus / "sub" / "loop").symlink_to(corpus, target_is_directory=True)
    skipped: dict = {}
    files = resolve_inputs([str(corpus)], BuildConfig(), skipped)
    assert files == [str(corpus / "a.txt"), str(corpus / "link" / "x.txt")]
    assert skipped == {stats.LINKED_FOLDER_SEEN: [str(corpus / "sub" / "loop") + "/"]}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_left_out_and_listed_never_opened(tmp_path):
    """Opening a FIFO waits for a writer forever: in a folder it is skipped and listed, named alone it is refused."""
    (tmp_path / "a.txt").write_text("One sentence here. Another one there.\n")
    os.mkfifo(tmp_path / "pipe.txt")
    skipped: dict = {}
    assert resolve_inputs([str(tmp_path)], BuildConfig(), skipped) == [str(tmp_path / "a.txt")]
    assert skipped == {stats.NOT_REGULAR_FILE: [str(tmp_path / "pipe.txt")]}
    skipped = {}
    assert resolve_inputs([str(tmp_path / "a.txt"), str(tmp_path / "pipe.txt")], BuildConfig(), skipped) == [
        str(tmp_path / "a.txt")
    ]
    with pytest.raises(InputError, match="pipe.txt: not a regular file"):
        resolve_inputs([str(tmp_path / "pipe.txt")], BuildConfig(), {})


def test_files_inside_the_output_folder_are_never_inputs(tmp_path):
    (tmp_path / "out" / "shards").mkdir(parents=True)
    (tmp_path / "out" / "shards" / "s.arrow").write_bytes(b"x")
    (tmp_path / "a.txt").write_text("Text.\n")
    skipped: dict = {}
    files = resolve_inputs([str(tmp_path)], BuildConfig(), skipped)
    assert leave_out_output(files, str(tmp_path / "out"), skipped) == [str(tmp_path / "a.txt")]
    assert skipped == {stats.INSIDE_OUTPUT: [str(tmp_path / "out" / "shards" / "s.arrow")]}
    with pytest.raises(InputError, match="every input lies inside the output folder"):
        leave_out_output([str(tmp_path / "out" / "shards" / "s.arrow")], str(tmp_path / "out"), {})


def test_one_damaged_parquet_file_does_not_stop_the_check_but_all_damaged_do(tmp_path):
    pq.write_table(pa.table({"text": ["A sentence. Another one."]}), tmp_path / "good.parquet")
    data = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "a_cut.parquet").write_bytes(data[: len(data) // 2])  # sorted first: probed first
    check_inputs([str(tmp_path / "a_cut.parquet"), str(tmp_path / "good.parquet")], BuildConfig())
    with pytest.raises(InputError, match="a_cut.parquet: not a readable parquet file"):
        check_inputs([str(tmp_path / "a_cut.parquet")], BuildConfig())


GOOD = [
    "The first document has a sentence. It also has a second one.",
    "Another document is here. It ends with this sentence.",
    "A third document follows. It has two sentences as well.",
]


@pytest.mark.parametrize(
    "column",
    [pa.array([1, 2]), pa.array([None, None]), pa.array([["a. b."], ["c."]]), pa.array([{"t": "a"}, {"t": "b"}])],
)
def test_a_text_column_that_holds_no_text_stops_the_check(tmp_path, column):
    pq.write_table(pa.table({"text": column}), tmp_path / "t.parquet")
    with pytest.raises(InputError, match=r"t.parquet: column 'text' holds .*, not text .*pass --text-field NAME"):
        check_inputs([str(tmp_path / "t.parquet")], BuildConfig())
    pq.write_table(pa.table({"text": pa.array([b"A. B.", b"C. D."])}), tmp_path / "t.parquet")
    check_inputs([str(tmp_path / "t.parquet")], BuildConfig())  # UTF-8 bytes are text


def test_a_table_with_two_text_columns_stops_the_check(tmp_path):
    pq.write_table(pa.table([pa.array(["A. B."]), pa.array(["C. D."])], names=["text", "text"]), tmp_path / "t.parquet")
    with pytest.raises(InputError, match="t.parquet: 2 columns are named 'text'; rename all but one"):
        check_inputs([str(tmp_path / "t.parquet")], BuildConfig())


def test_a_compressed_table_file_stops_the_check_with_the_fix(tmp_path):
    pq.write_table(pa.table({"text": ["A. B."]}), tmp_path / "t.parquet")
    (tmp_path / "t.parquet.gz").write_bytes(gzip.compress((tmp_path / "t.parquet").read_bytes()))
    with pytest.raises(
        InputError, match=r"t.parquet.gz: not a readable parquet file \(gzip-compressed, .*: decompress it\)$"
    ):
        check_inputs([str(tmp_path / "t.parquet.gz")], BuildConfig())


def test_damaged_inputs_never_stop_a_build_and_the_summary_adds_up(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    lines = [json.dumps({"text": t}) for t in GOOD]
    (src / "good.jsonl").write_text("\n".join(lines) + "\n")
    # a lone surrogate crashed the whole build once
    (src / "surrogate.jsonl").write_text(
        '{"text": "Bad \\ud800 here. Two sentences."}\n'
        + json.dumps({"text": "A fourth document stands apart. It has a second sentence."})
        + "\n"
    )
    (src / "numbers.jsonl").write_text('{"text": 1}\n{"text": 2}\n{"text": 3}\n')
    (src / "nul.jsonl").write_text(lines[1].replace("Another", "Yet another") + '\n{"text": "raw \x00 nul. Two."}\n')
    many = "\n".join(json.dumps({"text": f"Record number {i}. It has two sentences."}) for i in range(3000))
    packed = gzip.compress(many.encode())
    (src / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (src / ".hidden.jsonl").write_text(lines[2] + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", str(src), "-o", str(out), "--dupe-factor", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    s = m["stats"]
    cut_records = s["records"]["read"] - 3 - 2 - 3 - 2
    assert 0 < cut_records < 3000
    assert s["drops"] == {
        stats.HIDDEN_FILE: 1,
        stats.TRUNCATED_FILE: 1,
        stats.INVALID_UNICODE: 1,
        stats.NUL_BYTE: 1,
        stats.NON_STRING_TEXT: 3,
    }
    assert m["skipped_inputs"] == {stats.HIDDEN_FILE: [str(src / ".hidden.jsonl")]}
    assert s["files"] == {"read": 5, "dropped": 1, "skipped": 1}
    assert s["records"] == {"read": 10 + cut_records, "dropped": 5}
    assert s["documents"]["read"] == 5 + cut_records
    assert s["documents"]["kept"] == s["documents"]["read"]
    (first,) = [line for line in result.output.splitlines() if line.startswith("files: ")]
    assert first.startswith(
        f"files: 5 read (1 dropped in whole or part), 1 skipped; records: {10 + cut_records} read, 5 dropped; "
        f"documents: {5 + cut_records} read, {5 + cut_records} kept"
    ), result.output


def test_all_numbers_summary_adds_up(tmp_path):
    (tmp_path / "n.jsonl").write_text('{"text": 1}\n{"text": 2}\n{"text": 3}\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "n.jsonl"), "-o", str(out)], catch_exceptions=False)
    assert "records: 3 read, 3 dropped; documents: 0 read, 0 kept" in result.output
    assert "dropped: non_string_text 3" in result.output


def test_a_failing_document_is_counted_not_fatal(monkeypatch, tmp_path, vocab_file):
    import corpusgen.documents

    real = corpusgen.documents.split_sentences

    def split(text, *args):
        if "BOOM" in text:
            raise RuntimeError("a splitter bug")
        return real(text, *args)

    monkeypatch.setattr(corpusgen.documents, "split_sentences", split)
    texts = ["The cat sat on the mat. It was happy.", "BOOM goes this one. And again."]
    path = tmp_path / "c.arrow"
    path.write_bytes(intermediate.encode_chunk([0, 1], texts))
    with BeamTestPipeline(runner="FnApiRunner", blocking=True) as p:
        chunk = p | beam.Create([{"chunk": "000000-00000", "path": str(path), "documents": 2}])
        out = chunk | TokenizeChunks(
            BuildConfig(heldout_fraction=0.0), StagedVocab.written(vocab_file, str(tmp_path / "w")), str(tmp_path / "w")
        )
        keys = out[MAIN] | beam.FlatMap(
            lambda tf: [d.doc.key for d in intermediate.decode_pool_documents(read_file(tf["path"]), [0], 0, 2**64)]
        )
        assert_that(keys, equal_to([content_key(texts[0])]), label="docs")
        counts = out[STATS] | beam.CombineGlobally(MergeCounts())
        assert_that(counts | beam.Map(lambda c: c.get(stats.DOCUMENT_ERROR)), equal_to([1]), label="stats")


def test_csv_and_tsv_are_left_out_and_listed_unless_read_as_text(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "One. Two."}\n')
    (tmp_path / "table.csv").write_text('id,text\n1,"Hello. There."\n')
    (tmp_path / "table.tsv.gz").write_bytes(gzip.compress(b"id\ttext\n1\tHello.\n"))
    skipped: dict = {}
    assert resolve_inputs([str(tmp_path)], BuildConfig(), skipped) == [str(tmp_path / "a.jsonl")]
    assert sorted(skipped[stats.UNSUPPORTED_FORMAT]) == [str(tmp_path / "table.csv"), str(tmp_path / "table.tsv.gz")]
    with pytest.raises(InputError, match="table.csv: CSV/TSV is not an input format"):
        resolve_inputs([str(tmp_path / "table.csv")], BuildConfig(), {})
    assert resolve_inputs([str(tmp_path / "table.csv")], BuildConfig(input_format="text"), {}) == [
        str(tmp_path / "table.csv")
    ]


def test_a_save_to_disk_folder_inside_an_input_folder_gives_its_arrow_files(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["One. Two."]}).save_to_disk(str(tmp_path / "corpus" / "ds"))
    (tmp_path / "corpus" / "a.jsonl").write_text('{"text": "One. Two."}\n')
    files = resolve_inputs([str(tmp_path / "corpus")], BuildConfig(), {})
    assert files[0] == str(tmp_path / "corpus" / "a.jsonl")
    assert len(files) == 2 and files[1].endswith(".arrow")  # not state.json / dataset_info.json


def test_a_file_named_twice_or_by_a_link_is_read_once_and_listed(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "One. Two."}\n')
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "a.jsonl")
    os.link(tmp_path / "a.jsonl", tmp_path / "hard.jsonl")
    a = str(tmp_path / "a.jsonl")
    skipped: dict = {}
    files = resolve_inputs([a, a, os.path.join(str(tmp_path), ".", "a.jsonl"), str(tmp_path / "link.jsonl"),
                            str(tmp_path / "hard.jsonl")], BuildConfig(), skipped)  # fmt: skip
    assert files == [a]
    assert sorted(skipped[stats.DUPLICATE_INPUT]) == sorted(
        [a, os.path.join(str(tmp_path), ".", "a.jsonl"), str(tmp_path / "link.jsonl"), str(tmp_path / "hard.jsonl")]
    )


def test_an_earlier_build_inside_an_input_folder_is_skipped_and_listed(tmp_path, vocab_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("One sentence here. Another one there.\n\nA second document. With two.\n")
    from pipelines.build import run_build

    run_build([str(corpus / "a.txt")], str(corpus / "out"), BuildConfig(dupe_factor=1), vocab_file)
    skipped: dict = {}
    assert resolve_inputs([str(corpus)], BuildConfig(), skipped) == [str(corpus / "a.txt")]
    assert skipped == {stats.EARLIER_BUILD: [str(corpus / "out") + os.sep]}
    with pytest.raises(InputError, match="out: a corpusgen build .*pass the corpus it was built from"):
        resolve_inputs([str(corpus / "out")], BuildConfig(), {})
