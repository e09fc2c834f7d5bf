"""deploy/ agrees with the code and the pinned versions: image tags, template parameters, launch script."""

import ast
import importlib.util
import json
import re
import shlex
import shutil
import sys

import apache_beam
import pytest
from click.testing import CliRunner

from corpusgen.cli import build, cli
from pipelines.build import beam_option_flags
from tests.conftest import ROOT

DATAFLOW = ROOT / "deploy" / "dataflow"


def _launch():
    spec = importlib.util.spec_from_file_location("launch", DATAFLOW / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dockerfile_matches_the_installed_beam_python_and_torch():
    text = (DATAFLOW / "Dockerfile").read_text()
    assert re.search(r"^ARG BEAM_VERSION=(\S+)$", text, re.M).group(1) == apache_beam.__version__
    python = re.search(r"^FROM apache/beam_python(\d+)\.(\d+)_sdk:\$\{BEAM_VERSION\}$", text, re.M)
    assert (int(python.group(1)), int(python.group(2))) == sys.version_info[:2]
    assert f"python{sys.version_info[0]}{sys.version_info[1]}-template-launcher-base" in text
    torch_pin = re.search(r'"torch==([0-9.]+)"', text).group(1)
    makefile_pin = re.search(r"pip install -q torch==([0-9.]+)", (ROOT / "Makefile").read_text()).group(1)
    assert torch_pin == makefile_pin
    assert '"apache-beam[gcp]==${BEAM_VERSION}"' in text
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"
    env = re.search(r"^ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/corpusgen/(\S+)$", text, re.M).group(1)
    assert (ROOT / env).is_file()


def test_template_parameters_are_real_options():
    ours = {o for p in build.params for o in getattr(p, "opts", [])}
    beam = set(beam_option_flags())
    params = json.loads((DATAFLOW / "metadata.json").read_text())["parameters"]
    names = [p["name"] for p in params]
    assert len(names) == len(set(names))
    unknown = [n for n in names if f"--{n}" not in ours | beam]
    assert unknown == []
    assert {"input", "output"} <= set(names)
    assert all(not p.get("isOptional") for p in params if p["name"] in ("input", "output"))


def test_launch_script_parses_and_its_command_line_dry_runs(monkeypatch):
    ast.parse((DATAFLOW / "launch.py").read_text())
    launch = _launch()
    # What the flex-template launcher hands the script: parameters and Dataflow's own options.
    given = ["--input=gs://my-bucket/corpus/*.jsonl.zst", "--output=gs://my-bucket/bert/v1", "--dupe-factor=2",
             "--max-seq-length=256", "--max-predictions-per-seq=40", "--project=my-proj", "--region=us-central1",
             "--temp_location=gs://my-bucket/tmp", "--staging_location=gs://my-bucket/staging",
             "--job_name=corpusgen-20260101", "--sdk_container_image=us-docker.pkg.dev/my-proj/cg/build:0.1.0"]  # fmt: skip
    argv = launch.build_argv(given)
    assert argv[:3] == ["corpusgen", "build", "--runner=DataflowRunner"]
    assert launch.build_argv(["--runner=DataflowRunner", *given])[2:] == ["--runner=DataflowRunner", *given]
    result = CliRunner().invoke(cli, [*argv[1:], "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'sdk_container_image = "us-docker.pkg.dev/my-proj/cg/build:0.1.0"' in result.output
    result = CliRunner().invoke(cli, [*argv[1:], "--dupe-factr=2", "--dry-run"])
    assert result.exit_code == 1 and "no such option: --dupe-factr (did you mean --dupe-factor?)" in result.output


@pytest.mark.parametrize("readme", ["dataflow/README.md", "flink_spark/README.md"])
def test_deploy_readmes_name_the_pinned_beam_version(readme):
    text = (ROOT / "deploy" / readme).read_text()
    versions = set(re.findall(r"beam[-_a-z0-9.]*?[-:]([0-9]+\.[0-9]+\.[0-9]+)", text, re.I))
    assert versions <= {apache_beam.__version__}, versions


def _dry_run_commands(text: str) -> list[list[str]]:
    """The ``corpusgen build … --dry-run`` command lines of a README's bash blocks, continuations joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.startswith("corpusgen build ") and "--dry-run" in line]


@pytest.mark.parametrize("readme", ["README.md", "deploy/dataflow/README.md"])
def test_readme_dry_runs_pass_as_written(readme, tmp_path, monkeypatch):
    # A user checks a cluster command line offline by pasting the README's: its placeholders must pass
    # Beam's validator (gs://BUCKET is not a valid bucket name, PROJECT not a project id).
    commands = _dry_run_commands((ROOT / readme).read_text())
    assert commands
    shutil.copy(ROOT / "corpusgen" / "data" / "bert-base-uncased-vocab.txt", tmp_path / "vocab.txt")
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 0, (argv, result.output)
        assert "nothing submitted" in result.output


def test_template_parameters_admit_every_choice_of_their_option():
    # A parameter's regex that leaves out a choice (next-sentence once admitted nsp|sop|none only) makes
    # the template refuse what the command line takes.
    import click

    options = {o: p for p in build.params for o in getattr(p, "opts", [])}
    for param in json.loads((DATAFLOW / "metadata.json").read_text())["parameters"]:
        option = options.get(f"--{param['name']}")
        if option is None or not isinstance(option.type, click.Choice):
            continue
        for choice in option.type.choices:
            assert choice in param["helpText"], (param["name"], choice)
            for regex in param.get("regexes", []):
                assert re.fullmatch(regex, choice), (param["name"], choice, regex)
