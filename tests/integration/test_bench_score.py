"""`make bench-score` at a tiny size: the benchmark runs on the landed schema (a table that gains a
column cannot break it unseen), its lists equal an exact sort, and it prints the job's time with
and without reasons."""
import re
import subprocess
import sys

from tests.helpers import HANG_GUARD_S, REPO


def test_bench_score_runs_at_a_tiny_size(tmp_path):
    run = subprocess.run(
        [sys.executable, "scripts/bench_score.py", "--users", "120", "--items", "30", "--dims", "8", "--k", "5",
         "--wide", "2", "--naive-users", "0", "--als-dims", "", "--history", "3", "--history-items", "20",
         "--out", str(tmp_path / "bench")], cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    # every written list equals the exact float64 sort of its user (seeded random factors; no near-ties)
    assert re.findall(r"exact check on (\d+) users: same list (\d+)", out) == [("120", "120")] * 2
    # every row says why: one tower block and the prior, so similar_to and popular_launch share all rows
    shares = re.findall(r"reasons: similar_to (\d+)%, attribute 0%, trending 0%, popular_launch (\d+)%, fallback 0%", out)
    assert len(shares) == 2 and all(int(a) + int(b) in (99, 100, 101) for a, b in shares)
    assert "no reasons" in out and re.search(r"120 x 30, d=8 .* \d+\.\d+x", out)
