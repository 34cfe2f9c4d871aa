"""Whole-or-nothing files, the folder lock, and the fault-injection points (rec_lib.core.files,
rec_lib.core.faults), with real processes where a kill is the point."""
import os
import signal
import subprocess
import sys
import time

import pytest

from rec_lib.core.files import FolderLock, LockedError, atomic_write, is_uri
from tests.helpers import HANG_GUARD_S, REPO


def test_atomic_write_replaces_whole_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.json"
    atomic_write(target, "old")
    atomic_write(target, b"new \xe4")
    assert target.read_bytes() == b"new \xe4"

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "half")
    assert target.read_bytes() == b"new \xe4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]  # no temporary file left


HOLD = ("import sys, time; from rec_lib.core.files import FolderLock\n"
        "with FolderLock(sys.argv[1], 'the training of model v1'):\n"
        "    print('held', flush=True); time.sleep(120)\n")


def test_the_lock_refuses_a_second_holder_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as err:
            with FolderLock(tmp_path, "the training of model v1"):
                pass
        assert f"the training of model v1 is in progress in another process (pid {holder.pid} on " in str(err.value)
        assert err.value.exit_code == 75
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with FolderLock(tmp_path, "the training of model v1") as lock:  # the kernel dropped the dead holder's lock
        assert f"pid {os.getpid()} on " in lock.holder()


POINT = ("from rec_lib.core import faults\n"
         "for i in range(3):\n"
         "    print('before', i, flush=True); faults.point('embed.chunk_written')\n"
         "print('done', flush=True)\n")


@pytest.mark.parametrize("kill_at, printed, killed", [
    ("", ["before 0", "before 1", "before 2", "done"], False),
    ("embed.chunk_written", ["before 0"], True),
    ("embed.chunk_written#2", ["before 0", "before 1"], True),
    ("score.lists_written", ["before 0", "before 1", "before 2", "done"], False),
])
def test_a_fault_point_kills_its_process_the_nth_time_it_is_reached(kill_at, printed, killed):
    env = {**os.environ, "REC_KILL_AT": kill_at}
    start = time.time()
    done = subprocess.run([sys.executable, "-c", POINT], cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.stdout.split("\n")[:-1] == printed
    assert done.returncode == (-signal.SIGKILL if killed else 0), (done.returncode, done.stderr, time.time() - start)


@pytest.mark.parametrize("location, uri", [
    ("s3a://bucket/models", True), ("dbfs:/rec/models", True), ("abfss://c@acct.dfs.core.windows.net/m", True),
    ("hdfs:///rec/models", True), ("file:///tmp/models", True), ("viewfs+x://n/m", True),
    ("/dbfs/rec/models", False), ("models", False), ("/Volumes/main/s/files", False), ("C:\\models", False),
    ("./a:b", False), ("3d://x", False),
])
def test_a_location_is_a_uri_when_it_names_a_scheme(location, uri):
    assert is_uri(location) is uri
