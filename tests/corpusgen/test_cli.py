"""The command line: one-line errors before any work, and the end-to-end path."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from corpusgen.cli import cli
from tests.conftest import DATA


def run(*args, input=None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def one_line_error(code, output, *needles):
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_no_input_matched(tmp_path):
    one_line_error(
        *run("build", str(tmp_path / "nothing*.txt"), "-o", str(tmp_path / "o")), "no input matched", "quote the glob"
    )
    one_line_error(*run("build", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o")), "missing.txt: no such file")


def test_unreadable_vocab(tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--vocab", str(tmp_path / "v.txt")),
        "v.txt: cannot read vocabulary",
        "--vocab",
    )
    (tmp_path / "v.txt").write_text("hello\nworld\n" * 5)
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--vocab", str(tmp_path / "v.txt")), "v.txt"
    )


def test_bad_option_combination(tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    one_line_error(
        *run(
            "build",
            str(tmp_path / "in.txt"),
            "-o",
            str(tmp_path / "o"),
            "--max-seq-length",
            "32",
            "--max-predictions-per-seq",
            "40",
        ),
        "max_predictions_per_seq",
    )
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--masked-lm-prob", "2"), "masked_lm_prob"
    )
    assert not (tmp_path / "o").exists(), "no work before the error"


def test_missing_text_field_named_with_fix(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    one_line_error(
        *run("build", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o")), "in.jsonl", "'text'", "--text-field"
    )


def test_refuses_non_empty_output(tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("precious")
    one_line_error(*run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o")), "o: not empty")
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--overwrite"), "not a corpusgen build"
    )
    assert (tmp_path / "o" / "mine.txt").read_text() == "precious"


def test_validate_reports_defects(tmp_path):
    code, out = run("validate", str(tmp_path))
    assert code == 1 and "no manifest" in out


def test_split_command():
    code, out = run("split", input="Dr. Smith arrived at 5 p.m. He was late.\n\n第一句。第二句！\n")
    assert code == 0
    assert out.splitlines()[:2] == ["Dr. Smith arrived at 5 p.m.", "He was late."]
    assert "" in out.splitlines()  # a blank line between documents


def test_split_reads_text_that_is_not_utf8_and_refuses_binary():
    result = CliRunner().invoke(cli, ["split"], input="Café au lait. Second sentence here.\n".encode("cp1252"))
    assert result.exit_code == 0
    assert result.output.splitlines()[-2:] == ["Café au lait.", "Second sentence here."]
    one_line_error(*run("split", input=b"\x00\xff\x81\x00\xfe" * 100), "stdin: not text", "pipe in UTF-8 text")


def test_vocab_command_trains_a_usable_vocab(tmp_path):
    out = tmp_path / "v.txt"
    code, msg = run("vocab", str(DATA / "sample_text.txt"), "-o", str(out), "--vocab-size", "300")
    assert code == 0, msg
    tokens = out.read_text().split("\n")[:-1]
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and 100 < len(tokens) <= 300
    code, msg = run(
        "build", str(DATA / "sample_text.txt"), "-o", str(tmp_path / "b"), "--vocab", str(out), "--dupe-factor", "1"
    )
    assert code == 0, msg
    assert run("validate", str(tmp_path / "b"))[0] == 0
    # an existing file (here the build's own vocabulary) is not replaced without --overwrite
    built_vocab = tmp_path / "b" / "vocab.txt"
    before = built_vocab.read_bytes()
    one_line_error(*run("vocab", str(DATA / "sample_text.txt"), "-o", str(built_vocab)), "exists", "--overwrite")
    assert built_vocab.read_bytes() == before
    code, msg = run("vocab", str(DATA / "sample_text.txt"), "-o", str(out), "--vocab-size", "300", "--overwrite")
    assert code == 0 and "(dropped: none)" in msg, msg
    one_line_error(*run("vocab", str(DATA / "sample_text.txt"), "-o", str(out / "x.txt")), "is a file, not a folder")


@pytest.mark.parametrize("model", ["bpe", "unigram", "wordpiece"])
def test_vocab_command_trains_each_model_with_its_special_tokens(tmp_path, model):
    from corpusgen.tokenizer import SubwordTokenizer, VocabFile

    out = tmp_path / "tokenizer.json"
    code, msg = run("vocab", str(DATA / "sample_text.txt"), "-o", str(out), "--model", model, "--vocab-size", "400")
    assert code == 0, msg
    tok = SubwordTokenizer(VocabFile.read(out))
    assert tok.kind == model
    if model == "wordpiece":
        assert tok.special_tokens == {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
        assert tok.do_lower_case is True
    else:
        assert tok.special_tokens == {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>", "mask": "<mask>"}
        assert (tok.cls_id, tok.pad_id, tok.sep_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 4)
        assert tok.do_lower_case is False  # cased unless --lower-case
        pair = tok.tokenizer.encode("A cat.", "A dog.")
        assert pair.tokens[0] == "<s>" and pair.tokens.count("</s>") == 2  # the build's <s> A </s> B </s>
        assert pair.type_ids[-1] == 1
    build = tmp_path / "b"
    code, msg = run("build", str(DATA / "sample_text.txt"), "-o", str(build), "--vocab", str(out), "--dupe-factor", "1")
    assert code == 0, msg
    assert run("validate", str(build))[0] == 0
    assert json.loads((build / "manifest.json").read_text())["tokenizer"]["type"] == model


def test_a_lower_case_option_against_a_tokenizer_json_stops_before_any_work(tmp_path):
    from tests.conftest import BPE_TOKENIZER

    out = tmp_path / "o"
    one_line_error(
        *run("build", str(DATA / "sample_text.txt"), "-o", str(out), "--vocab", str(BPE_TOKENIZER), "--lower-case"),
        f"Error: {BPE_TOKENIZER}: its normalizer has lowercase=False, the build asked for do_lower_case=True",
    )
    assert not out.exists()


def test_vocab_txt_is_wordpiece_only(tmp_path):
    one_line_error(
        *run("vocab", str(DATA / "sample_text.txt"), "-o", str(tmp_path / "vocab.txt"), "--model", "bpe"),
        "vocab.txt: a bpe tokenizer is saved as tokenizer.json only; pass -o tokenizer.json",
    )
    assert not (tmp_path / "vocab.txt").exists()


@pytest.mark.e2e
def test_end_to_end_build_validate_inspect_train(tmp_path):
    """The main path from the shell: build the bundled corpus, validate, inspect, train a few steps."""
    cg = [sys.executable, "-m", "corpusgen.cli"]
    data = tmp_path / "data"
    p = subprocess.run(
        [*cg, "build", "-o", str(data), "--dupe-factor", "1"], capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr
    assert "NSP random share" in p.stdout
    p = subprocess.run([*cg, "validate", str(data), "--json"], capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout)["ok"]
    p = subprocess.run([*cg, "inspect", str(data), "-n", "2"], capture_output=True, text=True)
    assert p.returncode == 0 and "A: " in p.stdout and "[MASK→" in p.stdout
    run_dir = tmp_path / "run"
    p = subprocess.run(
        [
            *cg,
            "train",
            "--data",
            str(data),
            "--model",
            "tiny",
            "--steps",
            "20",
            "--batch-size",
            "16",
            "--out",
            str(run_dir),
            "--log-every",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    logs = [json.loads(line) for f in run_dir.glob("*.jsonl") for line in f.read_text().splitlines()]
    train_logs = [r for r in logs if "mlm_loss" in r and "nsp_loss" in r]
    assert train_logs and train_logs[-1]["step"] == 20


def test_cleaning_options_reach_the_config(tmp_path):
    (tmp_path / "in.txt").write_text("First sentence here. Second one there.\n")
    code, out = run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--dupe-factor", "1", "--quality",
                    "--language", "en", "--near-dedup", "0.85", "--encoding", "cp1252", "--html", "never", "--write-removed")  # fmt: skip
    # Two sentences are too few for the quality filters: the build makes nothing, says so and fails,
    # and its manifest keeps the config and the drops.
    assert code == 1 and "Error: no instances were made" in out and "quality_too_few_sentences 1" in out, out
    cfg = json.loads((tmp_path / "o" / "manifest.json").read_text())["config"]
    assert cfg["quality"]["languages"] == ["en"] and cfg["near_dedup"]["threshold"] == 0.85
    assert (cfg["encoding"], cfg["html"], cfg["write_removed"]) == ("cp1252", "never", True)
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "p"), "--encoding", "klingon"), "klingon"
    )


def test_remote_runner_options_checked_before_any_work(tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    code, out = run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--runner", "DataflowRunner")
    one_line_error(code, out, "--runner DataflowRunner", "project", "temp_location", "local path")
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--runner", "Nope"),
        "Unexpected pipeline runner: Nope",
    )
    assert not (tmp_path / "o").exists()


def test_inspect_names_sops_label_for_what_it_is(tmp_path):
    out = tmp_path / "sop"
    code, text = run(
        "build", str(DATA / "sample_text.txt"), "-o", str(out), "--next-sentence", "sop", "--dupe-factor", "1"
    )
    assert code == 0, text
    code, text = run("inspect", str(out), "-n", "25")
    assert code == 0 and "(A and B swapped)" in text and "(B follows A)" in text
    assert "B is random" not in text


def test_a_build_warns_when_the_vocabulary_leaves_many_tokens_unknown(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Alice Met Bob In Paris. They Walked Home Together.\n\nCarol Saw Dave. He Waved Back.\n")
    code, out = run("build", str(src), "-o", str(tmp_path / "cased"), "--no-lower-case", "--dupe-factor", "1")
    assert code == 0, out
    (line,) = [x for x in out.splitlines() if x.startswith("warning:")]
    assert "are [UNK]" in line and "--no-lower-case" in line and "uncased" in line
    code, out = run("build", str(src), "-o", str(tmp_path / "uncased"), "--dupe-factor", "1")
    assert code == 0 and "warning:" not in out, out


def test_a_book_in_one_json_line_is_kept_and_what_the_size_limits_leave_out_is_named(tmp_path):
    """A JSON line holds a whole document: one of 1.5 MB (a book) is read at the defaults; documents over
    max_document_chars are left out with a warning naming the key and how to raise it."""
    sentences = " ".join(f"Sentence number {i} of the book goes on a while." for i in range(30_000))
    src = tmp_path / "books.jsonl"
    src.write_text(json.dumps({"text": sentences}) + "\n" + json.dumps({"text": "A short doc. It has two."}) + "\n")
    assert src.stat().st_size > 1 << 20
    code, out = run("build", str(src), "-o", str(tmp_path / "a"), "--dupe-factor", "1", "--workers", "1")
    assert code == 0 and "warning:" not in out, out
    drops = json.loads((tmp_path / "a" / "manifest.json").read_text())["stats"]["drops"]
    assert "line_too_long" not in drops and "document_too_long" not in drops
    cfg = tmp_path / "small.toml"
    cfg.write_text("[build]\nmax_document_chars = 100000\n")
    code, out = run("build", str(src), "-o", str(tmp_path / "b"), "--dupe-factor", "1", "--workers", "1",
                    "--config", str(cfg))  # fmt: skip
    (line,) = [x for x in out.splitlines() if x.startswith("warning:")]
    assert "1 document(s) over max_document_chars (100,000)" in line and "--config" in line, line


def test_a_step_that_fails_ends_in_one_line_without_beams_traceback(tmp_path):
    """A bug in a step (here made on purpose) reaches the user as one line; --debug shows the rest."""
    import subprocess
    import sys

    from tests.conftest import DATA, ROOT

    code = (
        "import sys, pipelines.transforms as t\n"
        "def boom(*a, **k): raise AttributeError('no attribute length_bin')\n"
        "t.create_instances = boom\n"
        "from corpusgen.cli import main\n"
        "sys.argv = ['corpusgen', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = ["build", str(DATA / "sample_text.txt"), "-o", str(tmp_path / "o"), "--dupe-factor", "1", "--workers", "1"]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("building ")]
    assert lines == [
        "Error: AttributeError: no attribute length_bin [while running 'CreateShards/PairMask'] "
        "(corpusgen --debug build … shows the traceback)"
    ], done.stderr
    debug = subprocess.run([sys.executable, "-c", code, "--debug", *args[:3], str(tmp_path / "d"), *args[4:]],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def test_readers_stop_on_a_manifest_whose_masking_or_tokenizer_was_edited(tmp_path):
    """validate flags these edits; inspect and the trainer's loader must not read on (they would show
    or train on no masks, or masks drawn over masks)."""
    from corpusgen.shards import ManifestError
    from trainer.data import ShardDataset

    def edit(out, section, key, value):
        m = json.loads((out / "manifest.json").read_text())
        m[section][key] = value
        (out / "manifest.json").write_text(json.dumps(m))

    for dynamic, needle in (
        (False, "config.dynamic_masking is true, but the build stored its rows with their masks"),
        (True, "config.dynamic_masking is false, but the build stored its rows unmasked"),
    ):
        out = tmp_path / f"dyn-{dynamic}"
        flags = ["--dynamic-masking"] if dynamic else []
        code, text = run("build", str(DATA / "sample_text.txt"), "-o", str(out), "--dupe-factor", "1", *flags)
        assert code == 0, text
        assert run("inspect", str(out), "-n", "1")[0] == 0
        edit(out, "config", "dynamic_masking", not dynamic)
        one_line_error(*run("inspect", str(out), "-n", "1"), needle, "the manifest was edited")
        with pytest.raises(ManifestError, match=needle):
            next(iter(ShardDataset(out, batch_size=4, seed=0)))
    static = tmp_path / "dyn-False"  # the flag and the stats both edited: a static build's rows still tell
    ms = json.loads((static / "manifest.json").read_text())
    ms["config"]["dynamic_masking"], ms["stats"]["masking"]["layout"] = True, "dynamic"
    (static / "manifest.json").write_text(json.dumps(ms))
    one_line_error(*run("inspect", str(static), "-n", "1"), "its rows hold masks", "the manifest was edited")
    with pytest.raises(ManifestError, match="its rows hold masks"):
        next(iter(ShardDataset(static, batch_size=4, seed=0)))
    edit(out, "config", "dynamic_masking", True)
    edit(out, "tokenizer", "type", "sentencepiece")
    one_line_error(*run("inspect", str(out), "-n", "1"), "tokenizer.type is 'sentencepiece'", "manifest was edited")


def test_a_finished_build_ends_without_the_interpreters_teardown_and_a_failed_one_as_usual(tmp_path):
    """After the summary, only Beam's and gRPC's teardown is left: ``main`` skips it (the exit handler
    registered first stands for it), with everything printed; a build that fails keeps the usual exit."""
    from tests.conftest import ROOT

    code = (
        "import atexit, sys\n"
        "marker = sys.argv.pop(1)\n"
        "atexit.register(lambda: open(marker, 'w').write('teardown ran'))\n"
        "from corpusgen.cli import main\n"
        "sys.argv = ['corpusgen', *sys.argv[1:]]\n"
        "main()\n"
    )
    marker = tmp_path / "marker"
    args = [str(marker), "build", str(DATA / "sample_text.txt"), "-o", str(tmp_path / "o"), "--dupe-factor", "1",
            "--workers", "1"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "NSP random share" in done.stdout and "built in" in done.stdout  # flushed into the pipe
    assert (tmp_path / "o" / "manifest.json").exists()
    assert not marker.exists()
    # no instances: exit 1 and the normal teardown
    (tmp_path / "one.txt").write_text("One sentence only.\n")
    args = [str(marker), "build", str(tmp_path / "one.txt"), "-o", str(tmp_path / "p"), "--workers", "1"]
    failed = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "Error:" in failed.stderr, failed.stderr
    assert marker.read_text() == "teardown ran"


def test_a_local_worker_log_line_is_shown_as_its_message():
    """Beam's job service relays a worker's warning as the text of a log proto; the user reads the message."""
    import logging

    from corpusgen.cli import _worker_message

    relayed = (
        'Worker: severity: WARN timestamp {   seconds: 1796357579   nanos: 853147745 } message: "/tmp/caf\\303\\251 '
        'x.txt: binary_file: a \\"table\\"; skipped it" instruction_id: "bundle_5" transform_id: "Read/Parse" '
        'log_location: "/work/corpusgen/readers.py:1037" thread: "Thread-11" '
    )
    record = logging.LogRecord("apache_beam", logging.WARNING, __file__, 1, "%s", (relayed,), None)
    assert _worker_message(record) and record.getMessage() == '/tmp/café x.txt: binary_file: a "table"; skipped it'
    other = logging.LogRecord("apache_beam", logging.INFO, __file__, 1, "Job state: %s", ("DONE",), None)
    assert _worker_message(other) and other.getMessage() == "Job state: DONE"


def test_output_into_a_pipe_its_reader_closed_ends_quietly(tmp_path):
    """`corpusgen split < docs | head -1` printed 'Error: BrokenPipeError: [Errno 32] Broken pipe (corpusgen
    --debug split … shows the traceback)' once head had its line: the reader leaving is no error to report."""
    from tests.conftest import ROOT

    docs = tmp_path / "docs.txt"
    docs.write_text("One sentence here. Another one there.\n\n" * 50_000)
    with docs.open("rb") as stdin:
        split = subprocess.Popen(
            [sys.executable, "-m", "corpusgen.cli", "split"],
            cwd=ROOT, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert split.stdout.readline() == b"One sentence here.\n"
        split.stdout.close()  # as head does
        stderr = split.stderr.read().decode()
        assert split.wait(timeout=120) == 1
    assert stderr == ""
