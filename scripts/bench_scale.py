"""Scale benchmark: does the driver's memory stay flat as the shop's users grow?

For each number of users it generates a demo shop (`--events-per-user` events each, `--items` items,
Parquet), then runs the stages as the public jobs run them (`python -m jobs.<name>`, each its own
driver process): features -> item text embeddings -> training (one epoch) -> scoring, on local Spark
with the driver capped (`spark.driver.memory`, `spark.driver.maxResultSize`). While a job runs, the
peak resident memory of its driver is read from /proc every 0.2 s: the job's Python process and
its JVM (VmHWM, the kernel's high-water mark). The Spark Python workers and Horovod's worker
processes (the executors' side) are not the driver and are left out.

`--master` picks the local Spark: `local[*]` (one JVM is the driver and the executors at once, so
its figure includes the executors' heap) or `local-cluster[W,C,MB]` (the default: W executor JVMs
of C cores each, started by the driver's JVM as on a standalone cluster, so the driver's JVM holds
only what a cluster's driver holds; the executors' peaks are reported apart, summed).

    python scripts/bench_scale.py [--users 100000 300000 1000000] [--events-per-user 10] [--items 20000]
                                  [--master 'local-cluster[2,1,2048]'] [--executor-memory MB of --master]
                                  [--driver-memory 2g] [--max-result-size 64m] [--out bench_out/scale]

Prints, and writes to <out>/scale.md and scale.json, per stage and size: wall seconds, the driver's
peak (Python + JVM, MB), the executors' and seconds per million events; then the largest size's
driver peak over the smallest's per stage (the target: at most 1.3x). A stage that fails (out of memory, a result over
maxResultSize) is reported with its exit code and figures, and the size's later stages are not run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from rec_lib.core.config import split_settings  # noqa: E402

NOW = "2026-11-01T00:00:00Z"
STAGES = ("build_features", "embed_items", "train", "score")


def peak_kb(pid: int) -> int:
    """VmHWM of a live process (kB), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(pid: int) -> List[int]:
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children(child))
    return found


def children(pid: int) -> List[int]:
    """Child processes of `pid`, started by any of its threads (a JVM starts its executors from a
    worker thread, which /proc lists under that thread)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def is_jvm(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "java"
    except (FileNotFoundError, ProcessLookupError):
        return False


class DriverPeak:
    """Samples the driver of a job process: its own VmHWM and its JVM child's (a Python driver
    starts its JVM as a direct child; the JVM's own children are Spark's Python workers and, in
    local-cluster mode, the executors' JVMs, whose peaks are kept apart)."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.pid, self.every_s = pid, every_s
        self.python_kb = self.jvm_kb = 0
        self.executor_kb: Dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.python_kb = max(self.python_kb, peak_kb(self.pid))
            for child in children(self.pid):
                if is_jvm(child):
                    self.jvm_kb = max(self.jvm_kb, peak_kb(child))
                    for executor in filter(is_jvm, descendants(child)):
                        self.executor_kb[executor] = max(self.executor_kb.get(executor, 0), peak_kb(executor))
            self._stop.wait(self.every_s)

    def stop(self) -> Dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {"python_mb": self.python_kb / 1024, "jvm_mb": self.jvm_kb / 1024,
                "driver_mb": (self.python_kb + self.jvm_kb) / 1024,
                "executors_mb": sum(self.executor_kb.values()) / 1024}


LOCAL_CLUSTER = re.compile(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")
UNIT_MB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def executor_memory(master: str, given: Optional[str]) -> Optional[str]:
    """The executors' heap on `local-cluster[W,C,MB]`: MB megabytes where not given (each worker
    offers MB and one executor takes it all); a heap over MB would leave every executor waiting for
    a worker with room, so it is refused. None for any other master (its executors are the driver)."""
    match = LOCAL_CLUSTER.fullmatch(master.strip())
    if not match:
        return None
    worker_mb = int(match.group(3))
    if given is None:
        return f"{worker_mb}m"
    size = re.fullmatch(r"(\d+)([kmgt]?)b?", given.strip().lower())
    if not size:
        raise SystemExit(f"--executor-memory must be a JVM size such as 2g or 1536m, got {given!r}")
    mb = int(size.group(1)) * UNIT_MB[size.group(2) or "m"]
    if mb > worker_mb:
        raise SystemExit(f"--executor-memory {given} is more than the {worker_mb} MB each worker of {master} "
                         f"offers: no executor could start (raise the MB in --master)")
    return given


def bench_conf(out: Path, master: str, driver_memory: str, executor_memory: Optional[str], max_result_size: str) -> Path:
    """conf/local.yaml with the driver capped, on `master`."""
    from rec_lib.core.loader import read_tree

    conf = read_tree(REPO / "conf" / "local.yaml")  # with the base it extends: one file
    conf["spark"]["master"] = master
    conf["spark"]["driver_memory"] = driver_memory
    extra = {"spark.driver.maxResultSize": max_result_size}
    if executor_memory:  # local-cluster: executors reach the driver on the loopback address
        extra.update({"spark.executor.memory": executor_memory, "spark.driver.host": "127.0.0.1",
                      "spark.driver.bindAddress": "127.0.0.1"})
    conf["spark"]["conf"] = {**(conf["spark"].get("conf") or {}), **extra}
    path = out / "bench.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


def run_job(name: str, conf: Path, settings: List[str], log: Path) -> Dict[str, float]:
    cmd = [sys.executable, "-m", f"jobs.{name}", "--conf-file", str(conf), "--set", " ".join(settings)]
    start = time.perf_counter()
    # a local cluster's workers keep their executors' logs here, not in the installed pyspark
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(log.parent / "spark-work")}
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = DriverPeak(proc.pid)
        code = proc.wait()
    return {"seconds": time.perf_counter() - start, **peak.stop(), "exit_code": code}


def run_size(out: Path, conf: Path, users: int, events_per_user: int, items: int, extra: List[str]) -> dict:
    root = out / f"users{users}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    events = users * events_per_user
    common = [f"paths.input={root / 'input'}", f"paths.warehouse={root / 'warehouse'}", f"run.now={NOW}",
              f"train.model_dir={root / 'models'}", f"train.petastorm_cache_dir={root / 'petastorm'}",
              'mlflow.tracking_uri=""', "train.epochs=1", f"demo.n_users={users}", f"demo.n_items={items}",
              f"demo.n_events={events}", "demo.format=parquet", "demo.chunk_users=20000", *extra]
    log = root / "jobs.log"
    start = time.perf_counter()
    if run_job("generate_data", conf, common, log)["exit_code"] != 0:
        raise SystemExit(f"the demo shop could not be generated; its log: {log}")
    result = {"users": users, "events": events, "items": items, "generate_s": time.perf_counter() - start}
    for stage in STAGES:  # a stage that fails is reported with its figures; the later ones are not run
        result[stage] = run_job(stage, conf, common, log)
        print(f"users {users}: {stage} {result[stage]['seconds']:.0f} s, driver peak "
              f"{result[stage]['driver_mb']:.0f} MB, executors {result[stage]['executors_mb']:.0f} MB, "
              f"exit code {result[stage]['exit_code']}", flush=True)
        if result[stage]["exit_code"] != 0:
            print(f"users {users}: {stage} failed; its log: {log}", flush=True)
            break
    return result


def report(results: List[dict], args: argparse.Namespace) -> str:
    lines = [f"master {args.master}; driver capped at spark.driver.memory={args.driver_memory}, "
             f"spark.driver.maxResultSize={args.max_result_size}; {args.events_per_user} events per user, "
             f"{args.items} items, one epoch", "",
             "| stage | users | events | wall s | s per M events | driver peak MB (Python + JVM) | executors' peaks MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for stage in STAGES:
        for r in results:
            f = r.get(stage)
            if f is None:
                lines.append(f"| {stage} | {r['users']:,} | {r['events']:,} | not run | | | |")
                continue
            failed = f" **failed (exit {f['exit_code']})**" if f["exit_code"] else ""
            lines.append(f"| {stage} | {r['users']:,} | {r['events']:,} | {f['seconds']:.0f}{failed} | "
                         f"{f['seconds'] / (r['events'] / 1e6):.0f} | {f['driver_mb']:.0f} "
                         f"({f['python_mb']:.0f} + {f['jvm_mb']:.0f}) | {f['executors_mb']:.0f} |")
    if len(results) > 1:
        lines += ["", f"largest over smallest ({results[-1]['users']:,} / {results[0]['users']:,} users):", ""]
        for stage in STAGES:
            small, large = results[0].get(stage), results[-1].get(stage)
            if not small or not large or small["exit_code"] or large["exit_code"]:
                lines.append(f"- {stage}: not comparable (a size failed or did not run)")
                continue
            lines.append(f"- {stage}: driver peak x{large['driver_mb'] / small['driver_mb']:.2f}, wall time "
                         f"x{large['seconds'] / small['seconds']:.2f} for x{results[-1]['events'] / results[0]['events']:.1f} events")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--events-per-user", type=int, default=10)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--master", default="local-cluster[2,1,2048]",
                        help="local[*]: one JVM for driver and executors; local-cluster[W,C,MB]: W executor JVMs")
    parser.add_argument("--executor-memory", default=None,
                        help="each executor's heap (local-cluster only; default: the MB each worker offers)")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--max-result-size", default="64m")
    parser.add_argument("--out", default="bench_out/scale")
    parser.add_argument("--set", default="", help="further settings for every job, 'key=value ...'")
    import bench_results

    bench_results.add_argument(parser, "scale")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    conf = bench_conf(out, args.master, args.driver_memory, executor_memory(args.master, args.executor_memory),
                      args.max_result_size)
    extra = split_settings(args.set) if args.set else []
    results = [run_size(out, conf, users, args.events_per_user, args.items, extra) for users in sorted(args.users)]
    text = report(results, args)
    (out / "scale.md").write_text(text + "\n")
    (out / "scale.json").write_text(json.dumps(results, indent=1))
    print(text)
    bench_results.write(args.results, "bench-scale: the driver's peak memory and each stage's time as users grow",
                        "make bench-scale", text, markdown=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
