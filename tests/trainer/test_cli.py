import json

import pytest
from click.testing import CliRunner

from trainer.cli import COMMANDS, bench_loader, main, run_module


def test_commands_are_exported_for_corpusgen():
    assert [c.name for c in COMMANDS] == ["train", "plot", "export"]
    assert bench_loader.name == "loader"


def test_bench_loader_prints_json_last(build_dir):
    result = CliRunner().invoke(main, ["bench", "loader", str(build_dir), "--batch-size", "32", "--seconds", "0.5"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert {"seq_per_s", "tokens_per_s", "pad_fraction"} <= last.keys() and last["seq_per_s"] > 0


def test_bad_data_dir_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and "no manifest" in result.output


@pytest.mark.e2e
def test_train_stop_resume_plot_export(build_dir, tmp_path):
    run = CliRunner()
    args = [
        "train",
        "--data",
        str(build_dir),
        "--out",
        str(tmp_path / "run"),
        "--steps",
        "12",
        "--batch-size",
        "8",
        "--log-every",
        "4",
        "--no-progress",
    ]
    r = run.invoke(main, [*args, "--stop-after", "8"])
    assert r.exit_code == 0, r.output
    r = run.invoke(main, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["step"] == 12
    r = run.invoke(main, ["plot", str(tmp_path / "run")])
    assert r.exit_code == 0 and (tmp_path / "run" / "curves.png").stat().st_size > 1000
    with open(tmp_path / "run" / "train.jsonl", "a") as log:  # a run killed while writing its log
        log.write('{"step": 13, "mlm_lo')
    r = run.invoke(main, ["plot", str(tmp_path / "run")])
    assert r.exit_code == 0 and "1 unreadable line(s) skipped" in r.output, r.output
    r = run.invoke(main, ["plot", str(tmp_path / "run"), "-o", str(tmp_path / "curves.foo")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "name it .png, .svg or .pdf" in r.output, r.output
    r = run.invoke(main, ["plot", str(tmp_path / "run"), "-o", str(tmp_path / "curves.SVG")])
    assert r.exit_code == 0 and (tmp_path / "curves.SVG").read_bytes().lstrip().startswith(b"<?xml"), r.output
    r = run.invoke(main, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0 and (tmp_path / "hf" / "model.safetensors").exists()


def test_module_entry_defaults_to_train(build_dir, tmp_path):
    with pytest.raises(SystemExit) as exc:
        run_module(
            [
                "--data",
                str(build_dir),
                "--out",
                str(tmp_path / "run"),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--no-progress",
            ]
        )
    assert exc.value.code == 0
    assert (tmp_path / "run" / "ckpt-0000002.pt").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--batch-size", "0"], "'--batch-size': 0 is not in the range x>=1"),
        (["--steps", "0"], "'--steps': 0 is not in the range x>=1"),
        (["--predictions", "500"], "500 masked positions do not fit rows of 128"),
        (["--threads", "-1"], "'--threads': -1 is not in the range x>=1"),
    ],
)
def test_bench_train_refuses_impossible_sizes_by_option(args, needle):
    from corpusgen.cli import cli

    r = CliRunner().invoke(cli, ["bench", "train", *args])
    assert r.exit_code == 2 and needle in r.output, r.output


def test_a_refused_start_is_an_error_line_like_the_others(build_dir, tmp_path):
    """'OUT: holds checkpoints already …' and '… need a model with as many positions …' came without the
    'Error: ' every other refusal of train has (trainer.train raises them as SystemExit with the message)."""
    run = CliRunner()
    common = ["train", "--data", str(build_dir), "--steps", "1", "--batch-size", "4", "--no-progress"]
    r = run.invoke(main, [*common, "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    r = run.invoke(main, [*common, "--out", str(tmp_path / "run")])
    assert r.exit_code == 1
    assert r.output.splitlines()[-1] == (
        f"Error: {tmp_path / 'run'}: holds checkpoints already; pass --resume to continue that run, or choose another --out"
    )
    r = run.invoke(main, [*common, "--out", str(tmp_path / "small"), "--max-position-embeddings", "8"])
    assert r.exit_code == 1
    assert r.output.splitlines()[-1].startswith(f"Error: {build_dir}: rows of up to ")
    assert not (tmp_path / "small").exists()
