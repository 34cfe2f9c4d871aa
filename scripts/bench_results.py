"""Where a benchmark's figures go: `docs/benchmarks/<name>.md`, written by the benchmark itself.

Each file holds the exact command, the commit it ran on (with `+changes` when the checkout had
uncommitted edits to tracked files), the date, the machine and the benchmark's own report, so the
docs link to figures that a run produced rather than to numbers copied by hand. `--results PATH`
(every benchmark has it) writes elsewhere: the smoke tests write theirs into a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "docs" / "benchmarks"
STARTED = time.monotonic()  # the benchmark's start: its scripts import this module first


def add_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """`--results PATH`, defaulting to docs/benchmarks/<name>.md."""
    parser.add_argument("--results", default=str(RESULTS_DIR / f"{name}.md"),
                        help=f"the results file to write (default docs/benchmarks/{name}.md)")


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        edited = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+changes" if edited else "")


def machine() -> str:
    memory = ""
    try:
        total_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                        if line.startswith("MemTotal:"))
        memory = f", {total_kb / 2**20:.0f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{memory}, "
            f"Python {platform.python_version()}")


def command(argv=None) -> str:
    """The command as it was typed: `python scripts/<bench>.py <its arguments>`."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *argv[1:]])


def took(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def render(title: str, make_target: str, body: str, markdown: bool = False, argv=None,
           now: datetime = None, seconds: float = None) -> str:
    """The file: a header, then the report, as markdown or (a column-aligned printout) preformatted."""
    now = now or datetime.now(timezone.utc)
    report = [body.rstrip("\n")] if markdown else ["```", body.rstrip("\n"), "```"]
    return "\n".join([
        f"# {title}", "",
        f"Written by `{make_target}` (scripts/bench_results.py); run it again to replace this file.", "",
        f"- command: `{command(argv)}`",
        f"- commit: {commit()}",
        f"- date: {now.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- took: {took(time.monotonic() - STARTED if seconds is None else seconds)}", "",
        *report, ""])


def write(path: str, title: str, make_target: str, body: str, markdown: bool = False) -> Path:
    """Print where the figures went and write them; the file is replaced whole (a temporary file renamed)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(title, make_target, body, markdown))
    tmp.replace(out)
    print(f"results written to {out}")
    return out
