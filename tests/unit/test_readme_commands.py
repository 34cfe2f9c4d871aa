"""The README's two commands are the ones the Makefile provides and .ci/run uses."""
import re

from tests.helpers import REPO


def _first_code_block(text: str) -> list:
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_readme_starts_with_exactly_two_commands():
    assert _first_code_block((REPO / "README.md").read_text()) == ["make run", "make test"]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines()
             if l.strip() and not l.startswith("#") and not l.startswith("set ") and not l.startswith("cd ")]
    assert lines == ["make test"]


def test_makefile_targets_set_up_first():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run: setup$", makefile, re.M)
    assert re.search(r"^test: setup$", makefile, re.M)
    for variable in ("INPUT", "WAREHOUSE", "CONF", "SET"):
        assert re.search(rf"^{variable} \?=", makefile, re.M), variable
