"""Every `make bench-*` runs at a tiny size in `make test` and writes its results file (into a temporary
folder) with the command, commit, date, machine and its table, so a schema, settings or API change
cannot break a benchmark unseen. The figures at these sizes mean nothing; the make targets run the
full sizes. Here: make run job by job, and the regimes."""
import re

from tests.helpers import bench_results, run_bench

TINY_SHOP = ("demo.n_users=400 demo.n_items=200 demo.n_events=20000 demo.chunk_users=200 demo.dirty_fraction=0 "
             "train.epochs=2 train.batch_size=64 evaluate.ks=[0,1] evaluate.als_iterations=2")


def test_bench_run(tmp_path):
    out = tmp_path / "run.md"
    run_bench("bench_run.py", "--out", str(tmp_path / "run"), "--set", TINY_SHOP, "--results", str(out))
    text = bench_results(out, "bench-run: make run on the demo shop", "bench_run.py")
    assert re.search(r"make run on the demo shop \(conf/local.yaml; demo.n_users=400 .*\): \d+ min \d\d s in all", text)
    for job in ("generate_data", "build_features", "embed_items", "train", "evaluate", "score"):
        assert re.search(rf"\| jobs.{job} \| \d+ \| \d+% \|", text), job


def test_bench_regimes(tmp_path):
    out = tmp_path / "regimes.md"
    run_bench("bench_regimes.py", "--regimes", "text", "--seeds", "1", "--windows", "validation",
              "--out", str(tmp_path / "run"), "--set", TINY_SHOP + " evaluate.backtest=false", "--results", str(out))
    text = bench_results(out, "bench-regimes: one configuration on worlds it was not tuned on", "bench_regimes.py")
    assert "## text, validation window (seeds 1; mean)" in text
    assert re.search(r"\| model \| \d\.\d{3} / \d\.\d{3} \| \d\.\d{3} / \d\.\d{3} \|", text)
    assert "Model minus the best baseline, smallest over seeds and k: recall@20" in text
