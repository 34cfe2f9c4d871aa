"""Packaging for rec_lib and its console entry points."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "rec_lib" / "__init__.py").read_text()).group(1)


def _requirements(name):
    lines = (HERE / "requirements" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# The jobs as console commands (also the Databricks bundle's python_wheel_task entry points). They
# live inside rec_lib: the wheel ships no top-level package but rec_lib (`jobs/` is the checkout's
# and the --py-files zip's `python -m jobs.<name>` / spark-submit entry files).
ENTRY_POINTS = {
    "rec-generate-data": "rec_lib.demo.job:main",
    "rec-build-features": "rec_lib.features.job:main",
    "rec-embed-items": "rec_lib.text.job:main",
    "rec-train": "rec_lib.training.job:main",
    "rec-score": "rec_lib.scoring.job:main",
    "rec-evaluate": "rec_lib.evaluation.job:main",
    "rec-apply-sql": "rec_lib.platform.sql_views:main",
}

setup(
    name="rec-lib",
    version=VERSION,
    description="Cold-start recommendations of new items: Spark + Delta features, text encoder, "
    "Horovod two-tower training, top-K scoring",
    packages=find_packages(include=["rec_lib", "rec_lib.*"]),
    package_data={"rec_lib.platform": ["sql/*.sql"]},
    python_requires=">=3.11,<3.12",
    # Loose here, so installing the wheel on a platform (Databricks Runtime) keeps the platform's own
    # builds; the exact, tested pins are the extras and requirements/*.txt.
    install_requires=["pyyaml>=6.0", "numpy>=1.23,<2", "pandas>=1.5", "pyarrow>=14"],
    # spark: a Spark of its own (local, or spark-submit from a packed environment); train: the
    # training and encoding stack. Horovod is built against the installed TensorFlow
    # (scripts/setup_env.sh), so it is not listed; Databricks Runtime 15.4 LTS ML ships it.
    # gpu: the train extra with TensorFlow's GPU build in place of tensorflow-cpu (install [spark,gpu]).
    extras_require={"spark": _requirements("base.txt"), "train": _requirements("train.txt"),
                    "gpu": [r for r in _requirements("train.txt") if not r.startswith("tensorflow-cpu")]
                    + _requirements("gpu.txt"),
                    "dev": _requirements("dev.txt")},
    entry_points={"console_scripts": [f"{name}={target}" for name, target in ENTRY_POINTS.items()]},
)
