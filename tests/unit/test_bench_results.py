"""scripts/bench_results.py: the header every benchmark's results file carries, on hand-given values."""
import importlib.util
from datetime import datetime, timezone

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("bench_results", REPO / "scripts" / "bench_results.py")
bench_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_results)


def test_durations_read_as_a_person_writes_them():
    assert [bench_results.took(s) for s in (7.4, 65, 3599.6, 3600, 7322)] == [
        "7 s", "1 min 05 s", "1 h 00 min", "1 h 00 min", "2 h 02 min"]


def test_the_command_is_the_script_relative_to_the_repository_with_its_arguments_quoted():
    argv = [str(REPO / "scripts" / "bench_score.py"), "--users", "120", "--set", "a=1 b=2"]
    assert bench_results.command(argv) == "python scripts/bench_score.py --users 120 --set 'a=1 b=2'"


def test_a_file_holds_the_header_then_the_report_preformatted_or_as_markdown():
    now = datetime(2026, 12, 7, 19, 5, tzinfo=timezone.utc)
    text = bench_results.render("bench-x: a title", "make bench-x", "a  b\n1  2\n", argv=["scripts/bench_x.py", "--n", "3"],
                                now=now, seconds=65)
    lines = text.splitlines()
    assert lines[0] == "# bench-x: a title"
    assert "- command: `python scripts/bench_x.py --n 3`" in lines
    assert "- date: 2026-12-07 19:05 UTC" in lines and "- took: 1 min 05 s" in lines
    assert lines[-3:] == ["a  b", "1  2", "```"] and lines[-4] == "```"
    table = bench_results.render("t", "make t", "| a |\n|---|\n| 1 |", markdown=True, argv=["x.py"], now=now, seconds=1)
    assert table.splitlines()[-3:] == ["| a |", "|---|", "| 1 |"] and "```" not in table


def test_the_readme_timing_line_is_the_text_between_its_markers():
    spec_run = importlib.util.spec_from_file_location("bench_run", REPO / "scripts" / "bench_run.py")
    bench_run = importlib.util.module_from_spec(spec_run)
    import sys

    sys.path.insert(0, str(REPO / "scripts"))  # bench_run imports bench_results as its script would
    try:
        spec_run.loader.exec_module(bench_run)
    finally:
        sys.path.remove(str(REPO / "scripts"))
    line = bench_run.timing_line({"a": 61.2, "b": 4.4}, "Linux x86_64, 2 CPUs", "abc1234")
    assert line == ("On Linux x86_64, 2 CPUs, `make run` took 1 min 06 s after set-up (commit abc1234; each job's share: "
                    "[docs/benchmarks/run.md](docs/benchmarks/run.md)).")
    readme = "# x\n\n<!-- bench-run -->old\ntext<!-- /bench-run -->\n\nrest\n"
    assert bench_run.readme_with(readme, "new") == "# x\n\n<!-- bench-run -->new<!-- /bench-run -->\n\nrest\n"
    assert "<!-- bench-run -->" in (REPO / "README.md").read_text()
