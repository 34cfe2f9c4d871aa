"""Every `make bench-*` runs at a tiny size in `make test` and writes its results file (into a temporary
folder) with the command, commit, date, machine and its table, so a schema, settings or API change
cannot break a benchmark unseen. The figures at these sizes mean nothing; the make targets run the
full sizes. Here: training feeds and the scale benchmark."""
import re

from tests.helpers import bench_results, run_bench


def test_bench_train(tmp_path):
    out = tmp_path / "train.md"
    run_bench("bench_train.py", "--events", "3000", "--epochs", "1", "--out", str(tmp_path / "run"), "--results", str(out))
    text = bench_results(out, "bench-train: Petastorm against an in-memory feed, 1 and 2 Horovod workers", "bench_train.py")
    assert len(re.findall(r"\d worker\(s\): Petastorm from Delta +[\d,]+ examples/s \| in-memory tf.data +[\d,]+ "
                          r"examples/s", text)) == 2
    assert len(re.findall(r": 2 workers / 1 worker = \d+\.\d\dx", text)) == 2


def test_bench_scale(tmp_path):
    out = tmp_path / "scale.md"
    run_bench("bench_scale.py", "--users", "300", "--events-per-user", "10", "--items", "100", "--master", "local[2]",
         "--out", str(tmp_path / "run"), "--set", "train.epochs=1", "--results", str(out))
    text = bench_results(out, "bench-scale: the driver's peak memory and each stage's time as users grow", "bench_scale.py")
    assert len(re.findall(r"\| \w+ \| 300 \| [\d,]+ \| \d+ \| \d+ \| \d+ \(\d+ \+ \d+\) \| \d+ \|", text)) >= 4
