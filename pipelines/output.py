"""Taking an output folder for a build: the in-progress lock, and replacing an old build.

``take_output`` is the one place that decides whether a build may write into a folder.
On a local folder it takes an exclusive lock first (``fcntl.flock`` on ``.corpusgen-build.lock``,
holding the pid, host and start time for the message a second build gets); the kernel drops the
lock when its process ends, however it ends, so a killed build never blocks a rerun. Then, on
local and remote (gs://, s3://, hdfs://) outputs alike: an empty folder is taken as it is, an old
build is replaced only with ``overwrite`` (its manifest deleted first, so no reader takes the old
manifest over new shards), an unfinished build (its intermediate files, no manifest) is resumed
unless ``overwrite`` starts it over, and anything that is not a corpusgen build is never deleted.

Remote outputs have no lock: Beam's filesystems offer no atomic create-if-absent.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import NamedTuple

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from corpusgen.intermediate import WORK_DIR
from corpusgen.shards import LOCK_NAME, MANIFEST_NAME

# What a build writes at the top of its folder (the vocabulary under either of its names).
BUILD_ENTRIES = frozenset({MANIFEST_NAME, "shards", "removed", WORK_DIR, "vocab.txt", "tokenizer.json"})


class OutputError(ValueError):
    """An output folder a build must not write into, with the reason and the fix."""


def is_remote(path: str) -> bool:
    """True for a path on a filesystem other than the local one (gs://, s3://, hdfs://, …)."""
    return "://" in path and not path.startswith("file://")


class BuildLock:
    """An exclusive lock on a local output folder, held while a build writes there."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def take(cls, folder: Path) -> BuildLock:
        path = folder / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputError(
                    f"{folder}: another build is writing there{holder}; wait for it to end or stop it "
                    f"(the lock in {LOCK_NAME} is released when that process ends, even if it is killed)"
                ) from None
            # The holder before us may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else can see, and must take the new one.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held, so no one locks the old file after us
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> BuildLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (pid {info['pid']} on {info['host']}, since {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # the holder has not written its details yet


class TakenOutput(NamedTuple):
    lock: BuildLock | None
    """Held by the caller until the build ends (None on remote outputs)."""
    resumed: bool
    """An unfinished build is there and is continued (see pipelines.build.prepare_work_dir)."""

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def take_output(output: str, overwrite: bool) -> TakenOutput:
    """Make ``output`` ready for a build, or raise ``OutputError``."""
    if is_remote(output):
        return TakenOutput(None, _clear(output, overwrite, _remote_entries(output), _delete_remote))
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another -o/--output")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot create the output folder ({exc.strerror}); choose another -o/--output"
        ) from None
    lock = BuildLock.take(out)
    try:
        entries = {p.name for p in out.iterdir() if p.name != LOCK_NAME}
        return TakenOutput(lock, _clear(output, overwrite, entries, _delete_local))
    except BaseException:
        lock.release()
        raise


def check_output(output: str, overwrite: bool) -> None:
    """What ``take_output`` would refuse, raised as ``OutputError``, touching nothing (a dry run's check).

    A remote output is not listed (a dry run needs no network); with ``overwrite`` nothing is refused
    that a build would replace.
    """
    out = Path(output)
    if is_remote(output) or not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another -o/--output")
    if not overwrite:
        _clear(output, False, {p.name for p in out.iterdir() if p.name != LOCK_NAME}, None)


def _clear(output: str, overwrite: bool, entries: set[str], delete) -> bool:
    """The decision, the same for every filesystem: ``entries`` are the names at the top of ``output``.

    True when an unfinished build is left in place to be resumed.
    """
    if not entries:
        return False
    ours = entries & BUILD_ENTRIES
    if not overwrite:
        if WORK_DIR in ours and MANIFEST_NAME not in ours:
            return True
        if MANIFEST_NAME in ours:
            raise OutputError(f"{output}: holds a build; pass --overwrite to replace it, or choose another -o/--output")
        if ours:
            raise OutputError(
                f"{output}: holds an unfinished build (no {MANIFEST_NAME}: it was stopped or failed); "
                "pass --overwrite to replace it"
            )
        raise OutputError(f"{output}: not empty; choose another -o/--output")
    if not ours & {MANIFEST_NAME, "shards", "removed", WORK_DIR}:  # a build killed early leaves only _work
        raise OutputError(
            f"{output}: holds files that are not a corpusgen build; refusing to delete them, choose another -o/--output"
        )
    # The manifest first: from this moment the old build is no build, and no reader takes it.
    if MANIFEST_NAME in ours:
        delete(output, [MANIFEST_NAME])
    delete(output, sorted(ours - {MANIFEST_NAME}))
    return False


def _delete_local(output: str, names: list[str]) -> None:
    for name in names:
        path = Path(output) / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"{path}: cannot delete the old build ({exc.strerror}); remove it by hand") from None
    if MANIFEST_NAME in names:
        _fsync_dir(output)


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remote_files(output: str) -> list[str]:
    pattern = FileSystems.join(output, "**")
    try:
        return [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
    except BeamIOError as exc:
        first = str(next(iter(exc.exception_details.values()), exc)).splitlines()[0][:200]
        raise OutputError(
            f"{output}: cannot list the output folder ({first}); check the path and credentials"
        ) from None


def _remote_entries(output: str) -> set[str]:
    prefix = output.rstrip("/") + "/"
    return {p[len(prefix) :].split("/", 1)[0] for p in _remote_files(output) if p.startswith(prefix)}


def _delete_remote(output: str, names: list[str]) -> None:
    prefix = output.rstrip("/") + "/"
    doomed = [p for p in _remote_files(output) if p.startswith(prefix) and p[len(prefix) :].split("/", 1)[0] in names]
    if not doomed:
        return
    try:
        FileSystems.delete(doomed)
    except BeamIOError as exc:
        raise OutputError(f"{output}: cannot delete the old build ({exc}); remove it by hand") from None
