"""`corpusgen build --dry-run`: the real job graph for a cluster runner, built and checked offline."""

import socket

import pytest

from corpusgen.config import BuildConfig
from pipelines.build import dry_run
from tests.corpusgen.test_cli import one_line_error, run

GCS = ["gs://my-bucket/corpus/*.jsonl.zst", "-o", "gs://my-bucket/bert/v1"]
DATAFLOW = ["--runner", "DataflowRunner", "--project", "my-proj", "--region", "us-central1"]
STEPS = [
    "Files",
    "Read",
    "Tokenize",
    "NoNearDuplicates",
    "CreateShards",
    "AllStats",
    "SumStats",
    "Commit",
    "WriteManifest",
]


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def top_steps(out):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("steps ("))
    return [line.strip() for line in lines[start + 1 :] if line.startswith("  ") and not line.startswith("    ")][
        : len(STEPS)
    ]


def options(out):
    lines = out.splitlines()
    start = lines.index("options that would be submitted (Beam's names, defaults left out):")
    return dict(line.strip().split(" = ", 1) for line in lines[start + 1 :])


@pytest.mark.parametrize("form", ["space", "equals"])
def test_dataflow_dry_run_offline(offline, form):
    temp = ["--temp_location", "gs://my-bucket/tmp"] if form == "space" else ["--temp_location=gs://my-bucket/tmp"]
    args = DATAFLOW if form == "space" else [f"{a}={b}" for a, b in zip(DATAFLOW[::2], DATAFLOW[1::2])]
    code, out = run("build", *GCS, *args, *temp, "--max_num_workers", "8", "--dupe-factor", "2", "--dry-run")
    assert code == 0, out
    assert (
        out.splitlines()[0]
        == "dry run: DataflowRunner, nothing submitted; the job graph below was built and checked offline"
    )
    assert (
        "gs://my-bucket/corpus/*.jsonl.zst  (remote: not listed in a dry run; a run lists it before submitting)" in out
    )
    assert top_steps(out) == STEPS
    opts = options(out)
    assert {k: opts[k] for k in ("runner", "project", "region", "temp_location", "max_num_workers")} == {
        "runner": '"DataflowRunner"',
        "project": '"my-proj"',
        "region": '"us-central1"',
        "temp_location": '"gs://my-bucket/tmp"',
        "max_num_workers": "8",
    }
    assert "dry_run" not in opts


@pytest.mark.parametrize("missing", ["--project", "--region", "--temp_location"])
def test_dataflow_dry_run_names_a_missing_option(offline, missing):
    args = [*DATAFLOW, "--temp_location", "gs://my-bucket/tmp"]
    i = args.index(missing)
    code, out = run("build", *GCS, *args[:i], *args[i + 2 :], "--dry-run")
    one_line_error(code, out, f"--runner DataflowRunner: needs {missing}")


def test_dataflow_dry_run_refuses_local_paths(offline, tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    code, out = run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), *DATAFLOW,
                    "--temp_location", "gs://my-bucket/tmp", "--dry-run")  # fmt: skip
    one_line_error(code, out, f"-o {tmp_path / 'o'} is a local path that DataflowRunner's workers cannot write",
                   f"input {tmp_path / 'in.txt'} is a local path")  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_beam_validator_runs_offline(offline):
    code, out = run("build", *GCS, *DATAFLOW, "--temp_location", "gs://b/tmp", "--dry-run")
    one_line_error(code, out, "Invalid GCS bucket (gs://b/tmp), given for the option: temp_location")
    code, out = run(
        "build", *GCS, *DATAFLOW, "--temp_location", "gs://my-bucket/tmp", "--job_name", "Bad_Name", "--dry-run"
    )
    one_line_error(code, out, "Invalid job_name (Bad_Name)")


@pytest.mark.parametrize(
    "runner, address, missing",
    [
        ("FlinkRunner", ["--flink_master", "flink-host:8081"], "--flink_master HOST:8081"),
        ("SparkRunner", ["--spark_master_url=spark://spark-host:7077"], "--spark_master_url spark://HOST:7077"),
        ("PortableRunner", ["--job_endpoint", "jobs:8099"], "needs --job_endpoint"),
        ("FlinkRunner", ["--job_endpoint", "jobs:8099"], "--flink_master HOST:8081"),
    ],
)
def test_portable_runners_need_the_cluster_address(offline, runner, address, missing):
    hdfs = ["gs://my-bucket/corpus/*.txt.gz", "-o", "gs://my-bucket/bert/v1", "--runner", runner]
    one_line_error(*run("build", *hdfs, "--dry-run"), f"--runner {runner}: ", missing)
    code, out = run("build", *hdfs, *address, "--dry-run")
    assert code == 0, out
    assert top_steps(out) == STEPS
    key, value = address[0].lstrip("-").split("=") if "=" in address[0] else (address[0][2:], address[1])
    assert options(out)[key] == f'"{value}"'


def test_a_filesystem_beam_cannot_reach_is_named(offline):
    try:
        import hdfs  # noqa: F401

        pytest.skip("Beam's hadoop extra is installed here")
    except ImportError:
        pass
    code, out = run("build", "gs://my-bucket/c.txt", "-o", "hdfs://nn/bert/v1", "--runner", "FlinkRunner",
                    "--flink_master", "flink:8081", "--dry-run")  # fmt: skip
    one_line_error(code, out, "hdfs://nn/bert/v1: Beam cannot reach this filesystem here (Failed to import hdfs.")


def test_dask_dry_run(offline, tmp_path):
    pytest.importorskip("dask.distributed")
    (tmp_path / "in.txt").write_text("One. Two.\n")
    local = [str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--runner", "DaskRunner"]
    code, out = run("build", *local, "--dry-run")  # no address: a LocalCluster here, local paths are fine
    assert code == 0, out
    assert top_steps(out) == STEPS
    assert options(out)["runner"] == '"apache_beam.runners.dask.dask_runner.DaskRunner"'
    code, out = run("build", *local, "--dask_client_address", "tcp://scheduler:8786", "--dry-run")
    one_line_error(code, out, "is a local path that DaskRunner's workers cannot write")
    code, out = run("build", "s3://b/corpus/*.txt", "-o", "s3://b/out", "--runner", "DaskRunner",
                    "--dask_client_address", "tcp://scheduler:8786", "--dry-run")  # fmt: skip
    assert code == 0 and options(out)["address"] == '"tcp://scheduler:8786"', out
    assert not (tmp_path / "o").exists()


def test_dry_run_graph_is_the_build_graph(vocab_file):
    """The function behind the command: every DoFn pickled into the runner-API form, nothing run."""
    report = dry_run(["gs://my-bucket/a.txt"], "gs://my-bucket/out", BuildConfig(near_dedup=None), vocab_file,
                     runner="DataflowRunner", beam_args=["--project=my-proj", "--region=r", "--temp_location=gs://my-bucket/t"])  # fmt: skip
    assert report["runner"] == "DataflowRunner"
    assert [s for s in report["steps"] if "/" not in s] == STEPS
    assert {"Read/Parse", "Tokenize/CleanSplitTokenize", "CreateShards/PairMask", "CreateShards/CutWrite"} <= set(
        report["steps"]
    )
    # The vocabulary travels as a copy in the output's work folder (written when the build runs),
    # not pickled into every step that needs it.
    assert report["graph_bytes"] < len(vocab_file.data)
    assert report["options"]["project"] == "my-proj"


def test_local_dry_run_lists_local_files_and_touches_no_output(tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    code, out = run("build", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o"), "--dry-run")
    assert code == 0, out
    assert out.splitlines()[:3] == [
        "dry run: FnApiRunner, nothing submitted; the job graph below was built and checked offline",
        "inputs: 1 (1 local file(s) listed)",
        f"output: {tmp_path / 'o'}",
    ]
    assert not (tmp_path / "o").exists()


def test_a_dry_run_says_what_the_real_run_would_refuse_about_its_output(tmp_path):
    (tmp_path / "in.txt").write_text("One. Two.\n")
    built = tmp_path / "built"
    (built / "shards").mkdir(parents=True)
    (built / "manifest.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    args = ("build", str(tmp_path / "in.txt"), "--dry-run", "-o")
    one_line_error(*run(*args, str(built)), "holds a build; pass --overwrite")
    one_line_error(*run(*args, str(tmp_path / "notes")), "not empty; choose another")
    assert run(*args, str(built), "--overwrite")[0] == 0
    assert (built / "manifest.json").exists() and (tmp_path / "notes" / "mine.txt").exists()  # nothing touched


@pytest.mark.parametrize("name", ["os.system", "foo.bar.Baz", "builtins.print"])
def test_a_dotted_runner_name_outside_beam_is_refused_not_imported(offline, tmp_path, name):
    one_line_error(
        *run("build", "-o", str(tmp_path / "o"), "--runner", name, "--dry-run"), f"{name}: not a Beam runner"
    )
    assert not (tmp_path / "o").exists()


def test_beams_direct_alias_is_the_local_runner(tmp_path):
    code, out = run("build", "-o", str(tmp_path / "o"), "--runner", "direct", "--dry-run")
    assert code == 0, out


def test_dataflow_dry_run_checks_the_files_it_would_stage(offline, tmp_path):
    base = ["build", *GCS, *DATAFLOW, "--temp_location", "gs://my-bucket/tmp", "--dry-run"]
    missing = str(tmp_path / "nonexist" / "setup.py")
    one_line_error(*run(*base, "--setup_file", missing, "--requirements_file=/nonexist.txt"),
                   f"--setup_file {missing}: no such file here", "--requirements_file /nonexist.txt: no such file")  # fmt: skip
    (tmp_path / "requirements.txt").write_text("corpusgen\n")
    code, out = run(*base, "--requirements_file", str(tmp_path / "requirements.txt"))
    assert code == 0, out


@pytest.mark.parametrize(
    "arg, needle",
    [("--direct_num_workers=5", "pass --workers N instead"), ("--streaming", "a build is a batch job")],
)
def test_beam_options_corpusgen_sets_or_cannot_honour_are_refused(tmp_path, arg, needle):
    one_line_error(*run("build", "-o", str(tmp_path / "o"), arg), needle)


def test_pairing_tasks_are_split_by_copy_below_a_pool_count_that_follows_the_runner():
    from pipelines.build import REMOTE_MIN_TASKS, min_tasks_for
    from pipelines.transforms import few_pools

    assert min_tasks_for(None, 1, []) == 1  # one process: nothing to balance
    assert min_tasks_for("FnApiRunner", 4, []) == min_tasks_for("DaskRunner", 4, []) == 12
    assert min_tasks_for("DaskRunner", 4, ["--dask_client_address=h:8786"]) == REMOTE_MIN_TASKS
    assert min_tasks_for("DataflowRunner", 1, []) == REMOTE_MIN_TASKS
    cfg = BuildConfig(dupe_factor=3, nsp_pool_tokens=10_000)
    few = {"train": 30_000, "validation": 500}  # 3 + 1 pools
    assert few_pools(few, cfg, 5) and not few_pools(few, cfg, 4)
