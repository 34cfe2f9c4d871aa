"""Files on a local or mounted (NFS, DBFS FUSE) folder that a killed process never leaves half-written,
and a lock that a killed process never leaves held.

- `atomic_write`: the bytes go to a temporary file in the same folder, are flushed to disk, then
  renamed over the target (a rename within one folder is atomic on POSIX file systems): a reader
  sees the old file or the new one, never a part.
- `FolderLock`: an exclusive `flock` on `<folder>/.lock`. The kernel drops it when its holder
  exits, however it exits (SIGKILL included), so a lock is never stale; the file records who holds
  it, for the error the next holder gets.
"""
from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

from rec_lib.core.errors import RecError


def is_uri(location: str) -> bool:
    """Whether `location` names a file system by a scheme (`s3a://b/x`, `dbfs:/x`, `file:///x`) rather
    than being a plain path (`/dbfs/x`, `models`; a one-letter scheme is a Windows drive)."""
    scheme, sep, _ = location.partition(":")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum() \
        and scheme[0].isalpha()


class LockedError(RecError):
    """Another process holds the folder's lock (a second run of the same work)."""

    exit_code = 75  # EX_TEMPFAIL: running again once the other run has ended succeeds


def atomic_write(path: Union[str, Path], data: Union[str, bytes]) -> None:
    """Write `data` (text as UTF-8) to `path` through a temporary file and a rename."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FolderLock:
    """`with FolderLock(folder, what):` holds `<folder>/.lock` or raises LockedError at once,
    naming the holder (`what` says what the lock guards, for that message)."""

    NAME = ".lock"

    def __init__(self, folder: Union[str, Path], what: str):
        self.path = Path(folder) / self.NAME
        self.what = what
        self._fd: Optional[int] = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def __enter__(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{self.what} is in progress in another process ({self.holder()}; lock {self.path}); "
                              "run again once it has ended") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
