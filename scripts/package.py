"""Build what a cluster runs: the wheel, the zip for spark-submit --py-files and, with --env, the
packed environment for --archives.

    python scripts/package.py [--out dist] [--env]

- dist/rec_lib-<version>-py3-none-any.whl: rec_lib with the console entry points rec-*
  (the Databricks bundle installs it as the tasks' library);
- dist/rec_lib-<version>.zip: the wheel's rec_lib plus the checkout's jobs/ entry files, for
  `spark-submit --py-files` (the driver and every executor import rec_lib from it; `python -m
  jobs.<name>` works with the zip on PYTHONPATH);
- dist/rec_env-<version>.tar.gz (--env): a virtual environment with the pinned stack (pyspark,
  delta-spark, TensorFlow, Petastorm, Horovod, the encoder package) but not rec_lib, packed with
  venv-pack for `spark-submit --archives ...#environment`, so library updates ship as the small
  zip alone. Needs the same OS and Python on the cluster's nodes.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rec_lib import __version__  # noqa: E402

PACKAGES = ("rec_lib/",)


def build_wheel(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rec_lib-*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(REPO)], check=True)
    wheels = sorted(out.glob(f"rec_lib-{__version__}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"package: expected one rec_lib {__version__} wheel in {out}, found {wheels}")
    return wheels[0]


def build_zip(wheel: Path, out: Path) -> Path:
    """The wheel's rec_lib/ (code and SQL files, no metadata) and the checkout's jobs/*.py as a plain zip."""
    target = out / f"rec_lib-{__version__}.zip"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name.startswith(PACKAGES):
                dst.writestr(name, src.read(name))
        for path in sorted((REPO / "jobs").glob("*.py")):
            dst.write(path, f"jobs/{path.name}")
    return target


def build_env(out: Path) -> Path:
    """A fresh virtual environment with the pinned stack (scripts/setup_env.sh's steps, without
    the editable rec_lib, which venv-pack refuses), packed with venv-pack."""
    env = out / "env-build"
    shutil.rmtree(env, ignore_errors=True)
    subprocess.run(["bash", str(REPO / "scripts" / "setup_env.sh"), str(env), "--no-project"], check=True, cwd=REPO)
    target = out / f"rec_env-{__version__}.tar.gz"
    target.unlink(missing_ok=True)
    subprocess.run([str(env / "bin" / "venv-pack"), "--quiet", "--prefix", str(env), "--output", str(target)], check=True)
    target.chmod(0o644)  # venv-pack writes it private
    shutil.rmtree(env, ignore_errors=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "dist"), help="output folder (default dist/)")
    parser.add_argument("--env", action="store_true", help="also build the packed environment (minutes, ~1 GB)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    wheel = build_wheel(out)
    print(f"package: {wheel}")
    print(f"package: {build_zip(wheel, out)}")
    if args.env:
        print(f"package: {build_env(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
