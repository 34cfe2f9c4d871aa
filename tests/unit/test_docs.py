"""The README is an index (at most 15 KB) and the docs hold together: every relative link names a
file that exists (a benchmark's results file may be missing until its make target has run: the
target must exist), and every #anchor a heading of the file it points into."""
import re
from pathlib import Path

from tests.helpers import REPO

MAX_README_BYTES = 15 * 1024
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    in_code, out = False, set()
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def broken_links(doc: Path, makefile: str, root: Path = REPO) -> list:
    out = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # a URL
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            bench = path.parent == (root / "docs" / "benchmarks").resolve() and path.suffix == ".md"
            if not (bench and re.search(rf"^bench-{re.escape(path.stem)}:", makefile, re.M)):
                out.append(f"{doc.relative_to(root)}: {target} (no such file)")
            continue
        if anchor and path.suffix == ".md" and anchor not in anchors(path):
            out.append(f"{doc.relative_to(root)}: {target} (no such heading)")
    return out


def test_the_readme_is_an_index():
    assert len((REPO / "README.md").read_bytes()) <= MAX_README_BYTES


def test_every_link_of_the_readme_and_the_docs_resolves():
    makefile = (REPO / "Makefile").read_text()
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    assert [b for doc in docs for b in broken_links(doc, makefile)] == []


def test_the_link_check_finds_a_missing_file_a_missing_heading_and_allows_a_benchmark_not_yet_run(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Top\n## The `x` part: y\n[ok](#the-x-part-y) [bad](#nope) [gone](b.md) [web](https://e.org)\n")
    found = [line.split(": ", 1)[1] for line in broken_links(doc, "", tmp_path)]
    assert found == ["#nope (no such heading)", "b.md (no such file)"]
    assert slug("Running on a cluster: spark-submit, Databricks, notebooks") == \
        "running-on-a-cluster-spark-submit-databricks-notebooks"

