"""`corpusgen build`'s command line: every option is corpusgen's or Beam's, or the build stops before any work."""

import json
import os

import pytest
from click.testing import CliRunner

from corpusgen.cli import cli
from corpusgen.split import LANGUAGES
from tests.corpusgen.test_cli import one_line_error, run


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("One sentence is here. Another one is there.\n\nA second document. It has two sentences.\n")
    return str(path)


@pytest.mark.parametrize(
    "args, named, nearest",
    [
        (["--dupe-factr=1"], "--dupe-factr", "--dupe-factor"),
        (["--dupe-factr", "1"], "--dupe-factr", "--dupe-factor"),
        (["--whole-word-masking"], "--whole-word-masking", "--whole-word-mask"),
        (["--max_seq_length", "64"], "--max_seq_length", "--max-seq-length"),
        (["--temp-location", "gs://bucket/tmp"], "--temp-location", "--temp_location"),
        (["--projct=my-proj"], "--projct", "--project"),
    ],
)
def test_unknown_option_stops_the_build_naming_the_nearest(tmp_path, text, args, named, nearest):
    code, out = run("build", text, "-o", str(tmp_path / "o"), *args)
    one_line_error(code, out, f"no such option: {named} (did you mean {nearest}?)")
    assert not (tmp_path / "o").exists()


def test_unknown_option_without_a_near_one(tmp_path, text):
    one_line_error(*run("build", text, "-o", str(tmp_path / "o"), "--zzzzzzzz"), "no such option: --zzzzzzzz", "--help")


def test_beam_options_in_both_forms_are_not_inputs(tmp_path, text):
    """`--project my-proj` used to make my-proj an input path; both forms now reach Beam."""
    code, out = run("build", text, "-o", str(tmp_path / "o"), "--dupe-factor", "1", "--project", "my-proj",
                    "--job_name=my-job", "--experiments", "a", "--experiments=b")  # fmt: skip
    assert code == 0, out
    assert "building 1 file(s)" in out


def test_split_beam_args_normalises_to_one_token_each():
    from corpusgen.cli import build, split_beam_args

    ctx = build.make_context("build", ["-o", "x"])
    args = ["in.txt", "--project", "p", "-o", "out", "--region=r", "--dupe-factor", "2", "--streaming", "--lower-case",
            "--", "--odd-file"]  # fmt: skip
    ours, beam = split_beam_args(build, ctx, args)
    assert ours == ["in.txt", "-o", "out", "--dupe-factor", "2", "--lower-case", "--", "--odd-file"]
    assert beam == ["--project=p", "--region=r", "--streaming"]


def test_the_corpusgen_option_values_are_not_taken_for_options(tmp_path, text):
    code, out = run("build", text, "-o", str(tmp_path / "o"), "--dupe-factor", "1", "--text-field", "--project")
    assert code == 0, out  # "--project" is the value of --text-field here (unused by a text input)


def test_beam_values_are_checked_by_beams_parser(tmp_path, text):
    one_line_error(
        *run("build", text, "-o", str(tmp_path / "o"), "--num_workers", "many"),
        "Beam option --num_workers: invalid int value: 'many'",
    )
    one_line_error(*run("build", text, "-o", str(tmp_path / "o"), "--project"), "Beam option --project needs a value")
    assert not (tmp_path / "o").exists()


def test_the_flag_values_really_reach_the_config(tmp_path, text):
    code, out = run("build", text, "-o", str(tmp_path / "o"), "--dupe-factor=1", "--whole-word-mask", "--seed", "7")
    assert code == 0, out
    cfg = json.loads((tmp_path / "o" / "manifest.json").read_text())["config"]
    assert (cfg["dupe_factor"], cfg["do_whole_word_mask"], cfg["random_seed"]) == (1, True, 7)
    assert cfg["mask_scheme"] == "whole-word"


def test_mask_scheme_option_names_the_scheme(tmp_path, text):
    code, out = run("build", text, "-o", str(tmp_path / "o"), "--dupe-factor=1", "--mask-scheme", "whole-word")
    assert code == 0, out
    cfg = json.loads((tmp_path / "o" / "manifest.json").read_text())["config"]
    assert (cfg["mask_scheme"], cfg["do_whole_word_mask"]) == ("whole-word", True)
    code, out = run("build", text, "-o", str(tmp_path / "p"), "--mask-scheme", "spans")
    assert code == 2 and "'spans' is not one of" in out


def test_unsupported_language_is_refused_listing_the_supported(tmp_path, text):
    code, out = run("build", text, "-o", str(tmp_path / "o"), "--lang", "xx")
    one_line_error(code, out, "lang 'xx' is not supported", "choose one of auto, bs,", ", en,", ", zh")
    assert not (tmp_path / "o").exists()
    one_line_error(*run("split", "--lang", "xx", input="One. Two.\n"), "--lang 'xx' is not supported", ", ja,")
    code, out = run("split", "--lang", "de_DE", input="Das ist am 3. Oktober passiert. Dann nicht mehr.\n")
    assert (code, out) == (0, "Das ist am 3. Oktober passiert.\nDann nicht mehr.\n")
    assert "auto" in LANGUAGES and "en" in LANGUAGES


def test_unexpected_errors_end_in_one_line_and_debug_shows_them(tmp_path, text, monkeypatch):
    import pipelines.build

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipelines.build, "run_build", full_disk)
    code, out = run("build", text, "-o", str(tmp_path / "o"))
    assert code == 1 and out.splitlines()[0].startswith("building 1 file(s)"), out
    assert out.splitlines()[1:] == [
        "Error: OSError: [Errno 28] No space left on device (corpusgen --debug build … shows the traceback)"
    ]
    assert not (tmp_path / "o" / ".corpusgen-build.lock").exists(), "the lock goes with the failed build"
    result = CliRunner().invoke(cli, ["--debug", "build", text, "-o", str(tmp_path / "p")])
    assert isinstance(result.exception, OSError) and result.exception.errno == 28


def test_output_that_cannot_be_made_is_one_line(tmp_path, text):
    (tmp_path / "file").write_text("x")
    one_line_error(*run("build", text, "-o", str(tmp_path / "file" / "o")), "cannot create the output folder")
    one_line_error(*run("build", text, "-o", str(tmp_path / "file")), "exists and is not a folder")


def test_build_with_no_instances_fails_with_the_reason(tmp_path):
    """Every document dropped (numbers in the text field) used to exit 0; validate used to call it OK."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": 1}\n{"text": 2}\n{"text": 3}\n')
    code, out = run("build", str(src), "-o", str(tmp_path / "o"))
    assert code == 1, out
    assert out.splitlines()[-1] == (
        "Error: no instances were made: 0 document(s) read, 0 kept, dropped: non_string_text 3; "
        "check the inputs, --input-format, --text-field and --encoding (counts in manifest.json)"
    )
    code, out = run("validate", str(tmp_path / "o"))
    assert code == 1
    assert out.splitlines()[0] == (
        "DEFECT manifest.json: the build holds no instances (drops: non_string_text 3); nothing can be trained on it"
    )
    assert out.splitlines()[1] == "0 shard(s), 0 rows"  # not "None bytes/token; NSP random None; …"
    assert out.splitlines()[-1] == "FAILED: 1 defect(s)"


@pytest.mark.parametrize("layout", ["full-sentences", "none"])
def test_a_layout_without_pairs_prints_no_nsp_share_as_none(tmp_path, text, layout):
    out_dir = str(tmp_path / "o")
    code, out = run("build", text, "-o", out_dir, "--dupe-factor", "1", "--next-sentence", layout)
    assert code == 0, out
    summary = next(line for line in out.splitlines() if line.startswith("NSP random share"))
    assert summary.startswith(f"NSP random share: none (--next-sentence {layout} makes no NSP labels); masked ")
    code, out = run("validate", out_dir)
    assert code == 0, out
    assert "NSP random none (no NSP labels); mask/random/kept " in out.splitlines()[0]
    assert "None" not in out


def test_long_sequences_and_capped_masking_are_warned(tmp_path, text):
    code, out = run(
        "build", text, "-o", str(tmp_path / "o"), "--dupe-factor", "1", "--max-seq-length", "1000",
        "--max-predictions-per-seq", "20",
    )  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == (
        "warning: max_seq_length 1000 exceeds the 512 positions of standard BERT models: "
        "only a model with at least 1000 position embeddings can train on this build"
    )
    assert lines[1].startswith(
        "warning: max_predictions_per_seq 20 caps masking below masked_lm_prob 0.15 in instances of 137"
    )
    assert lines[1].endswith("--max-predictions-per-seq 150 masks at the full rate")
    summary = next(line for line in lines if line.startswith("NSP random share"))
    assert summary.endswith(
        "; max_predictions_per_seq 20 caps masking below masked_lm_prob 0.15 in instances of 137+ tokens"
    )
    code, out = run("build", text, "-o", str(tmp_path / "p"), "--dupe-factor", "1")
    assert code == 0 and "warning" not in out and "caps masking" not in out, out


def test_remote_vocab_is_read_through_beam_filesystems(tmp_path, monkeypatch):
    """A flex-template launcher has no local copy: --vocab gs://… is read once, by the launcher."""
    import pipelines.output
    from corpusgen.cli import _read_vocab
    from corpusgen.tokenizer import VocabError
    from tests.conftest import DATA

    monkeypatch.setattr(pipelines.output, "is_remote", lambda path: True)  # a local path stands in for gs://
    vocab = _read_vocab(str(DATA / "bert-base-uncased-vocab.txt"), dry_run=False)
    assert vocab.name == "vocab.txt" and vocab.data == (DATA / "bert-base-uncased-vocab.txt").read_bytes()
    with pytest.raises(VocabError, match="a dry run stays offline"):
        _read_vocab(str(DATA / "bert-base-uncased-vocab.txt"), dry_run=True)
    with pytest.raises(VocabError, match=f"{os.sep}missing.txt: cannot read vocabulary"):
        _read_vocab(str(tmp_path / "missing.txt"), dry_run=False)


def test_masking_options_reach_the_config(tmp_path, text):
    code, out = run(
        "build", text, "-o", str(tmp_path / "o"), "--dupe-factor=1", "--mask-scheme", "span", "--masked-lm-prob", "0.3",
        "--mask-replace-prob", "0.5", "--random-replace-prob", "0.25", "--dynamic-masking", "--span-p", "0.3",
        "--span-max-words", "5",
    )  # fmt: skip
    assert code == 0, out
    cfg = json.loads((tmp_path / "o" / "manifest.json").read_text())["config"]
    assert {k: cfg[k] for k in ("mask_scheme", "masked_lm_prob", "mask_replace_prob", "random_replace_prob")} == {
        "mask_scheme": "span",
        "masked_lm_prob": 0.3,
        "mask_replace_prob": 0.5,
        "random_replace_prob": 0.25,
    }
    assert (cfg["dynamic_masking"], cfg["span_p"], cfg["span_max_words"], cfg["mask_copies"]) == (True, 0.3, 5, 1)
    assert cfg["max_predictions_per_seq"] == 39  # follows the rate: ceil(128 * 0.3)
    code, out = run("build", text, "-o", str(tmp_path / "p"), "--mask-copies", "2")
    assert code == 0 and json.loads((tmp_path / "p" / "manifest.json").read_text())["config"]["mask_copies"] == 2
    bad = run("build", text, "-o", str(tmp_path / "q"), "--mask-replace-prob", "0.9", "--random-replace-prob", "0.2")
    one_line_error(*bad, "mask_replace_prob + random_replace_prob must be at most 1")


def test_a_config_files_explicit_values_survive_the_command_line():
    """What a config file names stays as named, even where it equals the value that would follow."""
    from corpusgen.cli import _merge_build_options

    cfg = _merge_build_options({"max_predictions_per_seq": 20}, {"masked_lm_prob": 0.3}, "build.toml")
    assert (cfg.masked_lm_prob, cfg.max_predictions_per_seq) == (0.3, 20)
    assert _merge_build_options({}, {"masked_lm_prob": 0.3}, "options").max_predictions_per_seq == 39  # follows
    cfg = _merge_build_options({"length_bin_width": 16}, {"next_sentence": "full-sentences"}, "build.toml")
    assert cfg.length_bin_width == 16
    assert _merge_build_options({}, {"next_sentence": "full-sentences"}, "options").length_bin_width == 8
    file_wwm = {"mask_scheme": "whole-word"}
    assert _merge_build_options(file_wwm, {"do_whole_word_mask": False}, "f").mask_scheme == "token"
    assert _merge_build_options(file_wwm, {"mask_scheme": "span"}, "f").mask_scheme == "span"
    assert _merge_build_options({"mask_scheme": "span"}, {"do_whole_word_mask": False}, "f").mask_scheme == "span"


@pytest.mark.parametrize(
    "flags", [["--mask-scheme", "token", "--whole-word-mask"], ["--no-whole-word-mask", "--mask-scheme", "whole-word"]]
)
def test_contradicting_mask_scheme_flags_stop_the_build(tmp_path, text, flags):
    code, out = run("build", text, "-o", str(tmp_path / "o"), *flags)
    one_line_error(code, out, "contradicts --mask-scheme")
    assert not (tmp_path / "o").exists()
