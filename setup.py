"""Packaging for rec_lib and its job entry points."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "rec_lib" / "__init__.py").read_text()).group(1)


def _requirements(name):
    lines = (HERE / "requirements" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="rec-lib",
    version=VERSION,
    description="Cold-start recommendations of new items: Spark + Delta features, text encoder, "
    "Horovod two-tower training, top-K scoring",
    packages=find_packages(include=["rec_lib", "rec_lib.*", "jobs"]),
    package_data={"rec_lib": ["conf/*.yaml", "sql/*.sql"]},
    python_requires=">=3.11,<3.12",
    install_requires=_requirements("base.txt"),
    extras_require={"train": _requirements("train.txt"), "dev": _requirements("dev.txt")},
    entry_points={
        "console_scripts": [
            "rec-generate-data=jobs.generate_data:main",
            "rec-build-features=jobs.build_features:main",
        ]
    },
)
