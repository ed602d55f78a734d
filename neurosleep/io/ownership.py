"""Run-file ownership: which paths a run may write or replace, and one writer per run file.

Rules (docs/run-file.md, "Ownership and locking"):

- A run writes only to a path that does not exist, or — with ``overwrite`` — replaces a regular
  file that is a neurosleep run file (root attribute ``format == "neurosleep-run"``, read with
  h5py). Directories, devices, FIFOs, sockets, symbolic links and every other file are refused.
- A replacement run writes beside the old file, to ``X.h5.partial``, and moves it over ``X.h5``
  (``os.replace``, atomic) only once it completed; a new run that fails, is interrupted or is
  killed leaves the old file untouched and its own file at ``X.h5.partial``.
- For the life of a run, an exclusive OS lock (``fcntl.flock``) is held on ``X.h5.lock``, which
  records the writer's pid, host and start time. The OS drops the lock when the process dies, so
  a lock file left by a killed run is stale: the lock can be taken again.

Examples
--------
>>> with claim_output("outputs/run.h5", overwrite=True) as claim:    # doctest: +SKIP
...     write_run(claim.write_path)
...     claim.commit()              # X.h5.partial -> X.h5 (nothing to do for a new path)
>>> is_locked("outputs/run.h5")     # doctest: +SKIP
LockInfo(pid=4242, host='node1', since='2026-01-01T10:00:00+00:00')
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py

from neurosleep.errors import OutputError
from neurosleep.io.layout import FORMAT

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LOCK_SUFFIX, PARTIAL_SUFFIX = ".lock", ".partial"
LOCK_TRIES, LOCK_RETRY_SECONDS = 5, 0.05  # a reader's probe holds a lock for microseconds


@dataclass(frozen=True)
class LockInfo:
    """The live writer of a run file: process id, host, and start time (ISO 8601, UTC)."""

    pid: int | None
    host: str
    since: str

    def __str__(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"process {self.pid}{where} since {self.since}"


def lock_path(path: str | Path) -> Path:
    """``X.h5`` → ``X.h5.lock``; the replacement ``X.h5.partial`` shares the lock of ``X.h5``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(PARTIAL_SUFFIX) + LOCK_SUFFIX)


def partial_path(path: str | Path) -> Path:
    """``X.h5`` → ``X.h5.partial``: where a run replacing ``X.h5`` writes until it completes."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


# ---------------------------------------------------------------------- what a path holds
def refusal(path: str | Path, *, content: bool = True) -> str | None:
    """Why the tool may not replace ``path`` (``None``: nothing there, or a run file).

    ``content=False`` checks only what kind of file it is (no read: a file still being created
    by its writer is not judged by its content).
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link; run files are written only to regular files (give its target)"
    if stat.S_ISDIR(mode):
        return "is a directory (give a file name such as DIR/run.h5)"
    if not stat.S_ISREG(mode):
        return f"is a {_kind(mode)}, not a regular file"
    if content and not is_run_file(path):
        return "exists and is not a neurosleep run file; neurosleep replaces only its own run files"
    return None


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISCHR: "character device",
        stat.S_ISBLK: "block device",
        stat.S_ISFIFO: "FIFO (named pipe)",
        stat.S_ISSOCK: "socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def is_run_file(path: str | Path) -> bool:
    """A regular HDF5 file whose root attribute ``format`` is ``"neurosleep-run"``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or handle.read(8) != HDF5_SIGNATURE:
            return False
    try:
        with h5py.File(path, "r", locking=False) as file:
            return file.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------- one writer per file
def is_locked(path: str | Path) -> LockInfo | None:
    """The live writer of run file ``path``, or ``None`` when no process is writing it (no lock
    file, or a stale one left by a process that died)."""
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_info(fd: int) -> LockInfo:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        data = {}
    return LockInfo(data.get("pid"), str(data.get("host", "?")), str(data.get("since", "?")))


@contextmanager
def run_file_lock(path: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock on run file ``path`` (``X.h5.lock``) for the ``with`` block.

    Raises :class:`OutputError` "X is being written by process N since T" when another live
    process holds it. The lock file is removed on a clean exit; after a kill it stays, stale.
    """
    path = Path(path)
    lock = lock_path(path)
    fd = _acquire(path, lock)
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield lock
    finally:
        try:
            os.unlink(lock)  # while still held: a process that opened it sees a stale inode
        except FileNotFoundError:
            pass
        os.close(fd)


def _acquire(path: Path, lock: Path) -> int:
    """Open and lock ``lock``; retry briefly (a reader's probe) and when the file was replaced."""
    holder: LockInfo | str = "another process"
    for _ in range(LOCK_TRIES):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            why = "is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise OutputError(f"{path}: cannot create its lock file {lock} ({why})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_info(fd)
            os.close(fd)
            time.sleep(LOCK_RETRY_SECONDS)
            continue
        if _same_file(fd, lock):
            return fd
        os.close(fd)  # the holder removed it between our open and our lock: take the new one
    raise OutputError(
        f"{path} is being written by {holder}; wait for it, or stop that process (lock file {lock})"
    )


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


# ---------------------------------------------------------------------- claiming an output
@dataclass
class Claim:
    """A run's hold on its output: ``write_path`` is where to write; :meth:`commit` puts the
    finished file at ``path``."""

    path: Path
    write_path: Path

    @property
    def replacing(self) -> bool:
        return self.write_path != self.path

    def commit(self) -> None:
        """Move a completed replacement over the old file (atomic); no-op for a new path."""
        if not self.replacing:
            return
        why = refusal(self.path)
        if why is not None:
            raise OutputError(
                f"{self.path} {why} (it changed during the run); this run's file is kept at "
                f"{self.write_path}"
            )
        os.replace(self.write_path, self.path)

    def kept_note(self) -> str:
        """For a run that did not complete: where its file is, and that the old one is kept."""
        note = f"partial run file: {self.write_path}"
        if self.replacing and self.path.exists():
            note += f"; the old run file {self.path} is kept unchanged"
        return note


@contextmanager
def claim_output(path: str | Path, *, overwrite: bool) -> Iterator[Claim]:
    """Lock ``path`` for a run and check what may be written (see the module's rules).

    Raises :class:`OutputError` naming the path and why, before anything is written.
    """
    path = Path(path)
    _refuse_unowned(path, content=False)  # before anything is created: no lock file in /dev
    _make_parent(path)
    with run_file_lock(path):
        _refuse_unowned(path)  # now that no other run can change it
        if not path.exists():
            yield Claim(path, path)
            return
        if not overwrite:
            raise OutputError(
                f"{path}: a run file already exists; pass --overwrite to replace it "
                "or --output to write elsewhere"
            )
        partial = partial_path(path)
        if os.path.lexists(partial):
            raise OutputError(
                f"{partial} exists: the file of an earlier replacement of {path} that did not "
                "complete (see `neurosleep info`); move or delete it, then run again"
            )
        yield Claim(path, partial)


def _refuse_unowned(path: Path, content: bool = True) -> None:
    why = refusal(path, content=content)
    if why is not None:
        raise OutputError(f"{path} {why}; choose another --output")


def make_folder(path: Path) -> None:
    """Create an output folder (and its parents); a refusal is one :class:`OutputError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create this folder ({exc.strerror})") from None


def _make_parent(path: Path) -> None:
    make_folder(path.parent)


# ---------------------------------------------------------------------- exports: whole or nothing
@contextmanager
def staged_file(path: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` when the block succeeds,
    delete it when the block fails. An existing ``path`` is replaced only with ``overwrite``
    and only when it is a regular file."""
    path = Path(path)
    _check_export_target(path, overwrite)
    _make_parent(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}{PARTIAL_SUFFIX}{path.suffix}")
    try:
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as exc:
            raise OutputError(f"{path}: cannot write there ({exc.strerror})") from None
        yield temporary
        os.replace(temporary, path)
    finally:
        _remove(temporary)


@contextmanager
def staged_dir(path: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder beside folder ``path``; when the block succeeds move the files
    written there into ``path`` (replacing files of the same name only with ``overwrite``);
    when it fails, delete them."""
    path = Path(path)
    _check_export_target(path, overwrite=True, folder=True)
    _make_parent(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}{PARTIAL_SUFFIX}{path.suffix}")
    try:
        temporary.mkdir()
    except OSError as exc:
        raise OutputError(f"{path}: cannot write there ({exc.strerror})") from None
    try:
        yield temporary
        written = sorted(temporary.iterdir())
        for file in written:
            _check_export_target(path / file.name, overwrite)
        path.mkdir(exist_ok=True)
        for file in written:
            os.replace(file, path / file.name)
    finally:
        _remove(temporary)


def _check_export_target(path: Path, overwrite: bool, folder: bool = False) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"{path}: cannot be inspected ({exc.strerror})") from None
    if folder and stat.S_ISDIR(mode):
        return
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path} {refusal(path, content=False)}; choose another output")
    if folder:
        raise OutputError(f"{path} is a file; give a folder for the SONATA files")
    if not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it, or choose another name")


def _remove(path: Path) -> None:
    """Delete a temporary file or folder of ours, if it is still there."""
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    elif os.path.lexists(path):
        path.unlink()
