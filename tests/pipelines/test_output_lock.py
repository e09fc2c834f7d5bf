"""One build per output folder: the lock, a killed build's rerun, and replacing an old build (local and remote)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import pipelines.output
from corpusgen.intermediate import WORK_DIR
from pipelines.output import LOCK_NAME, BuildLock, OutputError, TakenOutput, take_output
from tests.conftest import ROOT
from tests.corpusgen.test_cli import one_line_error, run

CG = [sys.executable, "-m", "corpusgen.cli"]


def test_a_second_lock_on_the_folder_is_refused_and_the_first_released(tmp_path):
    with take_output(str(tmp_path / "o"), overwrite=False).lock as lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid() and set(info) == {"pid", "host", "started"}
        with pytest.raises(OutputError, match=rf"another build is writing there \(pid {os.getpid()} on "):
            BuildLock.take(tmp_path / "o")
    assert not (tmp_path / "o" / LOCK_NAME).exists()
    take_output(str(tmp_path / "o"), overwrite=False).release()  # free again


def test_a_stale_lock_file_does_not_block(tmp_path):
    """A lock file left by a killed build holds no lock: the kernel released it with the process."""
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started": "then"}))
    taken = take_output(str(tmp_path / "o"), overwrite=False)
    assert json.loads(taken.lock.path.read_text())["pid"] == os.getpid() and not taken.resumed
    taken.release()


# A build that holds its lock and never finishes: the pipeline's run waits until the process is killed.
BLOCKED_BUILD = [
    sys.executable,
    "-c",
    "import sys, time, pipelines.build as b\n"
    "b.run_build = lambda *a, **k: time.sleep(600)\n"
    "from corpusgen.cli import main\n"
    "sys.argv = ['corpusgen', *sys.argv[1:]]\n"
    "main()\n",
]


def _wait_for_lock(out, proc):
    for _ in range(1200):
        try:
            if json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the first build never took its lock")


def test_concurrent_build_refused_then_a_killed_build_does_not_block_the_rerun(tmp_path):
    out = tmp_path / "o"
    (tmp_path / "in.txt").write_text("One sentence is here. Another one is there.\n")
    first = subprocess.Popen([*BLOCKED_BUILD, "build", str(tmp_path / "in.txt"), "-o", str(out), "--dupe-factor", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             start_new_session=True)  # fmt: skip
    try:
        _wait_for_lock(out, first)
        second = subprocess.run([*CG, "build", str(tmp_path / "in.txt"), "-o", str(out), "--overwrite"],
                                capture_output=True, text=True, timeout=600)  # fmt: skip
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(lines) == 1, second.stderr
        assert lines[0].startswith(f"Error: {out}: another build is writing there (pid {first.pid} on "), lines
        assert lines[0].endswith("is released when that process ends, even if it is killed)")
        assert not (out / "manifest.json").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the build and the worker processes it started, as a terminal's ^C
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert (out / LOCK_NAME).exists(), "the killed build left its lock file behind"
    rerun = subprocess.run([*CG, "build", str(tmp_path / "in.txt"), "-o", str(out), "--dupe-factor", "1"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "manifest.json").exists() and not (out / LOCK_NAME).exists()


def test_unfinished_and_finished_builds_need_overwrite(tmp_path):
    (tmp_path / "in.txt").write_text("One sentence is here. Another one is there.\n")
    out = tmp_path / "o"
    (out / "shards" / "train").mkdir(parents=True)
    (out / "shards" / "train" / "part.arrow").write_bytes(b"partial")
    one_line_error(
        *run("build", str(tmp_path / "in.txt"), "-o", str(out)),
        "holds an unfinished build (no manifest.json: it was stopped or failed); pass --overwrite",
    )
    code, msg = run("build", str(tmp_path / "in.txt"), "-o", str(out), "--dupe-factor", "1", "--overwrite")
    assert code == 0, msg
    assert not (out / "shards" / "train" / "part.arrow").exists()
    one_line_error(*run("build", str(tmp_path / "in.txt"), "-o", str(out)), "holds a build; pass --overwrite")


def test_an_unfinished_build_with_its_work_files_is_resumed_unless_overwritten(tmp_path):
    out = tmp_path / "o"
    (out / WORK_DIR / "pools").mkdir(parents=True)
    (out / "shards").mkdir()
    taken = take_output(str(out), overwrite=False)
    assert taken.resumed and (out / WORK_DIR / "pools").is_dir()
    taken.release()
    taken = take_output(str(out), overwrite=True)
    assert not taken.resumed and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    taken.release()


def test_overwrite_replaces_a_build_killed_before_its_first_shard(tmp_path):
    out = tmp_path / "o"
    (out / WORK_DIR).mkdir(parents=True)
    (out / WORK_DIR / "build.json").write_text("{}")  # all a build killed that early leaves
    taken = take_output(str(out), overwrite=True)
    assert not taken.resumed and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    taken.release()


def _old_build(root):
    (root / "shards" / "train").mkdir(parents=True)
    (root / "shards" / "train" / "old.arrow").write_bytes(b"old")
    (root / "tokenizer.json").write_text("{}")
    (root / "manifest.json").write_text("{}")


def test_remote_rebuild_takes_the_old_build_down_manifest_first(tmp_path, monkeypatch):
    """gs://… outputs go through Beam's FileSystems; a local folder stands in for the bucket."""
    monkeypatch.setattr(pipelines.output, "is_remote", lambda path: True)
    out = tmp_path / "bucket" / "build"
    _old_build(out)
    with pytest.raises(OutputError, match="holds a build; pass --overwrite"):
        take_output(str(out), overwrite=False)
    assert (out / "manifest.json").exists()

    deleted = []
    real_delete = pipelines.output.FileSystems.delete

    def record(paths):
        deleted.append(sorted(os.path.relpath(p, out) for p in paths))
        real_delete(paths)

    monkeypatch.setattr(pipelines.output.FileSystems, "delete", record)
    assert take_output(str(out), overwrite=True) == TakenOutput(None, False)  # no lock on remote outputs
    assert deleted == [["manifest.json"], [os.path.join("shards", "train", "old.arrow"), "tokenizer.json"]]
    assert not any(p.is_file() for p in out.rglob("*"))


def test_remote_output_with_foreign_files_is_never_deleted(tmp_path, monkeypatch):
    monkeypatch.setattr(pipelines.output, "is_remote", lambda path: True)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty; choose another"):
        take_output(str(tmp_path), overwrite=False)
    with pytest.raises(OutputError, match="not a corpusgen build; refusing to delete them"):
        take_output(str(tmp_path), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert take_output(str(tmp_path / "fresh"), overwrite=False) == TakenOutput(None, False)  # nothing there yet


def test_a_local_worker_process_ends_when_its_launcher_is_gone(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    code = "from pipelines.transforms import set_up_local_worker as e; import time; e(); print('up', flush=True); time.sleep(120)"
    env = {**os.environ, "CORPUSGEN_LAUNCHER_PID": str(launcher.pid)}
    worker = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert worker.stdout.readline().strip() == "up"
        time.sleep(1.5)
        assert worker.poll() is None  # its launcher is alive: it works on
        launcher.kill()
        launcher.wait()
        assert worker.wait(timeout=20) == 1
    finally:
        for p in (launcher, worker):
            if p.poll() is None:
                p.kill()
                p.wait()
    # in the launcher itself, or without the variable, it does nothing
    for env in (
        {**os.environ, "CORPUSGEN_LAUNCHER_PID": "self"},
        {k: v for k, v in os.environ.items() if k != "CORPUSGEN_LAUNCHER_PID"},
    ):
        code = "import os, pipelines.transforms as t; p = os.environ.get('CORPUSGEN_LAUNCHER_PID'); os.environ.update({'CORPUSGEN_LAUNCHER_PID': str(os.getpid())} if p else {}); t.set_up_local_worker(); print(t._local_worker_set_up)"
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert out.stdout.strip() == "False", out.stderr


FAST_EXIT = """
import atexit, os, sys, types
import pipelines.transforms as t
atexit.register(lambda: open(sys.argv[1], "w").write("teardown ran"))  # stands for Beam's and gRPC's
if sys.argv[2] == "beam":
    sys.modules["__main__"].__spec__ = types.SimpleNamespace(name=t.BEAM_WORKER_MAIN)
os.environ["CORPUSGEN_LAUNCHER_PID"] = str(os.getppid())
t.set_up_local_worker()
print("done", flush=True)
sys.stderr.write("unflushed")
if sys.argv[3] == "fail":
    raise RuntimeError("the harness failed")
"""


@pytest.mark.parametrize("ending", ["ok", "fail"])
def test_a_beam_worker_process_skips_the_teardown_and_keeps_its_exit_status(tmp_path, ending):
    marker = tmp_path / "marker"
    out = subprocess.run(
        [sys.executable, "-c", FAST_EXIT, str(marker), "beam", ending],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == (1 if ending == "fail" else 0), out.stderr
    assert out.stdout == "done\n"
    assert "unflushed" in out.stderr  # what it wrote still goes out
    if ending == "fail":
        assert "the harness failed" in out.stderr
    assert not marker.exists()  # the handlers registered before it (the slow teardown) were skipped


def test_other_worker_processes_end_as_usual(tmp_path):
    marker = tmp_path / "marker"
    out = subprocess.run(
        [sys.executable, "-c", FAST_EXIT, str(marker), "dask", "ok"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "teardown ran"
