"""What `scripts/package.py` builds: the wheel ships rec_lib alone (console commands inside it), the
--py-files zip adds the jobs/ entry files, and `python -m jobs.<name>` runs from the zip."""
import os
import subprocess
import sys
import zipfile

from tests.helpers import HANG_GUARD_S, REPO


def top_level(names):
    return {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}


def test_the_wheel_ships_only_rec_lib_and_its_sql_files(built_package):
    with zipfile.ZipFile(built_package["wheel"]) as z:
        names = z.namelist()
    assert top_level(names) == {"rec_lib"}  # no generic top-level `jobs` on a shared cluster
    sql = sorted(p.name for p in (REPO / "rec_lib" / "platform" / "sql").glob("*.sql"))
    assert sql and all(f"rec_lib/platform/sql/{name}" in names for name in sql)


def wheel_requirements(wheel) -> dict:
    """extra -> the Requires-Dist lines of the wheel's METADATA for it ("" for the core)."""
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    out = {}
    for line in meta.splitlines():
        if line.startswith("Requires-Dist: "):
            spec, _, marker = line[len("Requires-Dist: "):].partition(";")
            extra = marker.split("extra ==")[-1].strip().strip("'\"") if "extra ==" in marker else ""
            out.setdefault(extra, set()).add(spec.strip().replace(" ", ""))
    return out


def test_the_gpu_extra_is_the_train_extra_with_tensorflows_gpu_build(built_package):
    extras = wheel_requirements(built_package["wheel"])
    assert "tensorflow-cpu==2.15.1" in extras["train"] and "tensorflow-cpu==2.15.1" not in extras["gpu"]
    assert "tensorflow[and-cuda]==2.15.1" in extras["gpu"]
    assert extras["gpu"] - {"tensorflow[and-cuda]==2.15.1"} == extras["train"] - {"tensorflow-cpu==2.15.1"}


def test_the_zip_adds_the_job_files_and_runs_them(built_package, tmp_path):
    with zipfile.ZipFile(built_package["zip"]) as z:
        names = z.namelist()
    assert top_level(names) == {"rec_lib", "jobs"}
    assert sorted(n for n in names if n.startswith("jobs/")) == sorted(f"jobs/{p.name}" for p in (REPO / "jobs").glob("*.py"))
    env = {**os.environ, "PYTHONPATH": str(built_package["zip"])}
    # outside the checkout, so rec_lib and jobs can only come from the zip
    probe = subprocess.run([sys.executable, "-c", "import rec_lib, jobs.score; print(rec_lib.__file__, jobs.score.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [f"{built_package['zip']}/rec_lib/__init__.py", f"{built_package['zip']}/jobs/score.py"]
    run = subprocess.run([sys.executable, "-m", "jobs.score", "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=HANG_GUARD_S)
    assert run.returncode == 0, run.stderr
    assert "Score every user against the candidate items" in run.stdout and "--conf-file" in run.stdout
