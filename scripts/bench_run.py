"""Benchmark: what `make run` takes on the demo shop, stage by stage, on a fresh warehouse.

Usage: python scripts/bench_run.py [--out bench_out/run] [--set "key=value ..."]
Runs the jobs `make run` runs, in its order (generate_data, build_features, embed_items, train,
evaluate, score), each as its own process with conf/local.yaml and the folders under --out, and
times each one; a failing job stops the benchmark with its log's tail. A default run (no --set,
the default results file) also rewrites the README's timing line, between its bench-run markers.
"""
from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_results

REPO = Path(__file__).resolve().parents[1]
JOBS = ("generate_data", "build_features", "embed_items", "train", "evaluate", "score")


def settings(out: Path, extra: str) -> str:
    return (f"paths.input={out / 'shop'} paths.warehouse={out / 'warehouse'} train.model_dir={out / 'models'} "
            f"train.petastorm_cache_dir={out / 'petastorm'} evaluate.report_dir={out / 'reports'} "
            f"mlflow.tracking_uri=sqlite:///{out / 'mlflow.db'} {extra}").strip()


def run_job(name: str, conf_file: str, setting: str, log: Path) -> float:
    cmd = [sys.executable, "-m", f"jobs.{name}", "--conf-file", conf_file, "--set", setting]
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise SystemExit(f"bench-run: jobs.{name} failed (exit {done.returncode}); its log {log} ends:\n{tail}")
    return seconds


def report(seconds: dict, extra: str) -> str:
    total = sum(seconds.values())
    minutes, rest = divmod(round(total), 60)
    lines = [f"make run on the demo shop (conf/local.yaml{'; ' + extra if extra else ''}): "
             f"{minutes} min {rest:02d} s in all", "",
             "| job | seconds | share |", "|---|---:|---:|"]
    lines += [f"| jobs.{name} | {s:.0f} | {s / total:.0%} |" for name, s in seconds.items()]
    return "\n".join(lines)


README_LINE = re.compile(r"(<!-- bench-run -->).*?(<!-- /bench-run -->)", re.S)


def readme_with(readme: str, line: str) -> str:
    """The README with the text between its bench-run markers replaced by `line`."""
    if not README_LINE.search(readme):
        raise SystemExit("bench-run: README.md has no <!-- bench-run --> ... <!-- /bench-run --> line to update")
    return README_LINE.sub(lambda m: f"{m.group(1)}{line}{m.group(2)}", readme, count=1)


def timing_line(seconds: dict, machine: str, commit: str) -> str:
    total = sum(seconds.values())
    minutes, rest = divmod(round(total), 60)
    return (f"On {machine}, `make run` took {minutes} min {rest:02d} s after set-up "
            f"(commit {commit}; each job's share: [docs/benchmarks/run.md](docs/benchmarks/run.md)).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_out/run")
    parser.add_argument("--conf-file", default="conf/local.yaml")
    parser.add_argument("--set", default="", help="further settings for every job, 'key=value ...'")
    bench_results.add_argument(parser, "run")
    args = parser.parse_args(argv)
    out = (REPO / args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    setting = settings(out, args.set)
    seconds = {}
    for name in JOBS:
        seconds[name] = run_job(name, args.conf_file, setting, out / "jobs.log")
        print(f"bench-run: jobs.{name} {seconds[name]:.0f} s", flush=True)
    text = report(seconds, args.set)
    print("\n" + text)
    bench_results.write(args.results, "bench-run: make run on the demo shop", "make bench-run", text, markdown=True)
    if Path(args.results).resolve() == (bench_results.RESULTS_DIR / "run.md").resolve() and not args.set:
        readme = REPO / "README.md"  # the README's timing line is this run's (only the default run's)
        readme.write_text(readme_with(readme.read_text(), timing_line(seconds, bench_results.machine(),
                                                                      bench_results.commit())))
        print(f"timing line updated in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
