"""The dependency rule of rec_lib, read from the source with `ast` (nothing is imported), so a
forbidden import fails here rather than in review.

    core      errors, config, schema, clock, process, progress   imports only core; loads no framework
    platform  spark, io, columns, tracking, sql_views, cli        imports core (and platform)
    stages    features, text, training, scoring, evaluation, demo

1. core imports nothing of ours outside core, and no framework at module level (importing core
   never loads Spark or TensorFlow; `TableSpec.schema` imports pyspark's type classes on use).
2. platform imports core and platform only, and no TensorFlow/Horovod/Petastorm/faiss.
3. a stage imports core, platform and itself; another stage only along a declared edge (STAGE_EDGES:
   which modules of which stage, and why), never its `job` (an entry point: nothing imports it).
4. Spark (pyspark, delta, py4j, rec_lib.platform) is used by a stage's `job` module and the Spark-side
   modules named in SPARK_SIDE; every other stage module is pure (numpy, pandas, TensorFlow, faiss).
5. the modules in LAZY build Spark plans and run none: no action (collect, count, toPandas, write...).
6. no import cycle between rec_lib modules (imports inside functions count).
7. no function longer than MAX_FUNCTION_LINES lines, no module longer than MAX_MODULE_LINES.
8. jobs/*.py import one entry point (a stage's `job`, or the SQL views') and nothing else of ours;
   notebooks use the stages only through their `job` modules (and core, platform).
9. docs/architecture.md names every module of rec_lib.
"""
from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

from tests.helpers import REPO

LAYERS = ("core", "platform")
STAGES = ("features", "text", "training", "scoring", "evaluation", "demo")
SPARK = {"pyspark", "delta", "py4j"}
TRAINING_FRAMEWORKS = {"tensorflow", "tf_keras", "keras", "horovod", "petastorm", "faiss"}
FRAMEWORKS = SPARK | TRAINING_FRAMEWORKS | {"mlflow"}
# Stage modules besides `job` that may use Spark, and why.
SPARK_SIDE = {
    "rec_lib.features.transforms": "the validation and feature transforms are Spark column expressions",
    "rec_lib.training.data": "builds the training table and the catalogue from the Delta tables",
    "rec_lib.training.fit": "fits a model through Horovod on Spark tasks; the training and evaluation jobs share it",
    "rec_lib.training.store": "a model folder on a URI is copied with the session's Hadoop FileSystem and shipped "
                              "to the executors as the session's files",
    "rec_lib.scoring.serve": "serves the lists in Spark tasks; the scoring job and the evaluation's backtest share it",
    "rec_lib.scoring.tiles": "ships the candidate tiles and the history file to the executors (SparkContext.addFile) "
                             "and maps them in the tasks",
    "rec_lib.scoring.published": "which model's embeddings are served (model_gate, Delta time travel); the scoring "
                                 "job reads it and the evaluation gate writes it",
    "rec_lib.training.pairs": "the interactions before a cutoff, pair weights and user inputs are Spark plans",
    "rec_lib.training.cohorts": "samples the launch cohorts' users in Spark (seeded hash) and reads their inputs",
    "rec_lib.training.facade": "fits a model on Spark and registers it for the evaluation (imported on use: "
                               "importing the facade loads no Spark)",
    "rec_lib.evaluation.window": "the evaluation's window, new items and sampled users are Spark plans over the tables",
    "rec_lib.evaluation.inputs": "the rankers' inputs: text embeddings and histories read from Delta, ALS is Spark MLlib",
    "rec_lib.evaluation.backtest": "serves the cutoff day's lists with the scoring code in Spark tasks",
    "rec_lib.evaluation.results": "writes the run's evaluation_metrics rows and its MLflow run",
    "rec_lib.evaluation.publishing": "records the gate's decision in model_gate (Delta)",
}
# The only imports from one stage into another: (from, to) -> {module of `to`: why}.
STAGE_EDGES = {
    ("evaluation", "training"): {
        "rec_lib.training.facade": "the evaluation fits its cutoff model and reads its parts through one facade"},
    ("evaluation", "scoring"): {
        "rec_lib.scoring.serve": "the backtest serves lists with the scoring code itself",
        "rec_lib.scoring.published": "the gate records which model scoring serves",
        "rec_lib.scoring.reasons": "the report counts the lists' reasons as scoring names them"},
}
# Spark-side modules that only build plans (DataFrame -> DataFrame, columns): the job decides what runs.
LAZY = {"rec_lib.features.transforms", "rec_lib.platform.columns", "rec_lib.training.pairs"}
ACTIONS = {"collect", "first", "take", "head", "toPandas", "toLocalIterator", "show", "foreach", "foreachPartition",
           "approxQuantile", "save", "saveAsTable", "insertInto"}
MAX_FUNCTION_LINES = 70
MAX_MODULE_LINES = 450
ENTRY_POINTS = {"rec_lib.platform.sql_views"}  # besides every stage's `job`


@dataclass(frozen=True)
class Import:
    target: str  # a rec_lib module, or a third-party top-level package
    line: int
    top_level: bool  # at module level (loaded on import) rather than inside a function


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_modules(root: Path) -> Dict[str, Path]:
    return {module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def imports_of(path: Path, modules: Set[str]) -> List[Import]:
    """Every import in the file: rec_lib targets resolved to the module imported (`from a.b import c`
    is a.b.c when that is a module, else a.b); others as their top-level package."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        in_type_check = False  # `if TYPE_CHECKING:` blocks are annotations only
        for parent in ast.walk(tree):
            if (isinstance(parent, ast.If) and isinstance(parent.test, ast.Name) and parent.test.id == "TYPE_CHECKING"
                    and any(child is node for child in ast.walk(parent))):
                in_type_check = True
        if in_type_check:
            continue
        for name in names:
            target = name if name.startswith("rec_lib") else name.split(".")[0]
            found.append(Import(target, node.lineno, id(node) in top))
    return found


def part_of(module: str) -> str:
    """'core', 'platform', a stage's name, or '' for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(root: Path) -> List[str]:
    modules = read_modules(root)
    graph: Dict[str, Set[str]] = {}
    out = []
    for module, path in modules.items():
        part = part_of(module)
        graph[module] = set()
        for imp in imports_of(path, set(modules)):
            where = f"{module} (line {imp.line}) imports {imp.target}"
            if imp.target.startswith("rec_lib"):
                graph[module].add(imp.target)
                out += _layer_rule(module, part, imp.target, where)
            else:
                out += _framework_rule(module, part, imp, where)
        out += [f"{module}.{name} is {n} lines (at most {MAX_FUNCTION_LINES}): split it along its steps"
                for name, n in long_functions(path)]
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            out.append(f"{module} is {lines} lines (at most {MAX_MODULE_LINES}): split it into modules of one concern")
        if module in LAZY:
            out += [f"{module} (line {line}) runs a Spark action ({name}): a lazy module only builds plans; "
                    "run it in the job" for line, name in spark_actions(path)]
    out += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return out


def _layer_rule(module: str, part: str, target: str, where: str) -> List[str]:
    to = part_of(target)
    if to == "":
        return []  # the package root holds only the version
    if part == "core" and to != "core":
        return [f"{where}: core imports nothing of ours outside core"]
    if part == "platform" and to not in LAYERS:
        return [f"{where}: platform imports core and platform only"]
    if part in STAGES and to in STAGES and to != part and target.endswith(".job"):
        return [f"{where}: a stage never imports another stage's job (move what is shared out of the job)"]
    if part in STAGES and to in STAGES and to != part and target not in STAGE_EDGES.get((part, to), {}):
        return [f"{where}: {part} may import {to} only through {sorted(STAGE_EDGES.get((part, to), {})) or 'nothing'} "
                "(STAGE_EDGES); use the declared module, or declare the edge with its reason"]
    if part in STAGES and to == "platform" and not is_spark_side(module):
        return [f"{where}: a pure stage module uses no platform (Spark, storage, tracking); "
                "move this to the stage's job or list the module in SPARK_SIDE with the reason"]
    return []


def _framework_rule(module: str, part: str, imp: Import, where: str) -> List[str]:
    if part == "core" and imp.target in FRAMEWORKS and imp.top_level:
        return [f"{where}: importing core must not load a framework"]
    if part == "platform" and imp.target in TRAINING_FRAMEWORKS:
        return [f"{where}: platform does not train or encode"]
    if part in STAGES and imp.target in SPARK and not is_spark_side(module):
        return [f"{where}: a pure stage module uses no Spark; move this to the stage's job or list the "
                "module in SPARK_SIDE with the reason"]
    return []


def is_spark_side(module: str) -> bool:
    return module.endswith(".job") or module in SPARK_SIDE


def long_functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                yield node.name, n


def spark_actions(path: Path) -> List[tuple]:
    """(line, name) of each call that runs a Spark job, in source order: an action method, `.write`,
    or a bare `.count()`; the aggregate functions of the same names (`F.first(col)`, `F.count(col)`)
    are not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "write":
            found.append((node.lineno, node.col_offset, "write"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "F")):
            name = node.func.attr
            if name in ACTIONS or (name == "count" and not node.args and not node.keywords):
                found.append((node.func.end_lineno, node.func.end_col_offset, name))
    return [(line, name) for line, _, name in sorted(found)]


def entry_point_violations(repo: Path) -> List[str]:
    """Rule 8: what jobs/ and notebooks/ import of rec_lib."""
    modules = set(read_modules(repo / "rec_lib"))
    out = []
    for path in sorted((repo / "jobs").glob("*.py")):
        if path.name == "__init__.py":
            continue
        ours = {i.target for i in imports_of(path, modules) if i.target.startswith("rec_lib")}
        if len(ours) != 1 or not all(t.endswith(".job") or t in ENTRY_POINTS for t in ours):
            out.append(f"jobs/{path.name} imports {sorted(ours)}: a job file imports one entry point "
                       "(rec_lib.<stage>.job or the SQL views) and nothing else of ours")
    for path in sorted((repo / "notebooks").glob("*.py")):
        for i in imports_of(path, modules):
            if i.target.startswith("rec_lib") and part_of(i.target) in STAGES and not i.target.endswith(".job"):
                out.append(f"notebooks/{path.name} (line {i.line}) imports {i.target}: a notebook uses a stage "
                           "through its job module")
    return out


def documented_modules(doc: Path) -> Set[str]:
    """The rec_lib modules a document names (`rec_lib.x.y`)."""
    import re

    return set(re.findall(r"\brec_lib(?:\.[a-z_]+)+", doc.read_text()))


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle per strongly connected component with more than one module (or a self-import)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# --------------------------------------------------------------------------------------------
# The rule holds for rec_lib ...
# --------------------------------------------------------------------------------------------


def test_rec_lib_keeps_the_dependency_rule():
    assert violations(REPO / "rec_lib") == []


def test_jobs_and_notebooks_reach_the_library_through_entry_points():
    assert entry_point_violations(REPO) == []


def test_docs_architecture_names_every_module_and_no_other():
    modules = {m for m in read_modules(REPO / "rec_lib") if m.count(".") == 2}  # rec_lib.<part>.<module>
    named = documented_modules(REPO / "docs" / "architecture.md")
    assert sorted(modules - named) == [], "modules docs/architecture.md does not name (one line each)"
    stale = {m for m in named if m.count(".") == 2 and part_of(m) in (*LAYERS, *STAGES)} - modules
    assert sorted(stale) == [], "docs/architecture.md names modules that do not exist"


def test_every_module_belongs_to_a_layer_or_a_stage():
    parts = {part_of(m) for m in read_modules(REPO / "rec_lib")}
    assert parts <= {"", *LAYERS, *STAGES}, parts - {"", *LAYERS, *STAGES}


def test_the_spark_side_list_names_modules_that_exist_and_use_spark():
    modules = read_modules(REPO / "rec_lib")
    for module in SPARK_SIDE:
        uses = {i.target for i in imports_of(modules[module], set(modules))}
        assert uses & SPARK or any(t.startswith("rec_lib.platform") for t in uses), module


# --------------------------------------------------------------------------------------------
# ... and the check fails when it is broken (on a copy of rec_lib with one import added)
# --------------------------------------------------------------------------------------------


def _copy_with(tmp_path: Path, module_file: str, line: str) -> Path:
    root = tmp_path / "rec_lib"
    shutil.copytree(REPO / "rec_lib", root, ignore=shutil.ignore_patterns("__pycache__"))
    path = root / module_file
    path.write_text(path.read_text() + "\n" + line + "\n")
    return root


def test_core_importing_a_stage_is_refused(tmp_path):
    root = _copy_with(tmp_path, "core/config.py", "from rec_lib.text.job import run_embed_job")
    found = violations(root)
    assert any("rec_lib.core.config" in v and "imports rec_lib.text.job: core imports nothing of ours" in v
               for v in found), found
    # text.job imports core.config: the added import also closes a cycle
    assert any(v.startswith("import cycle:") and "rec_lib.core.config" in v for v in found), found


def test_a_pure_module_using_spark_is_refused(tmp_path):
    found = violations(_copy_with(tmp_path, "scoring/kernel.py", "from pyspark.sql import functions as F"))
    assert found == [f"rec_lib.scoring.kernel (line {_last_line(tmp_path, 'scoring/kernel.py')}) imports pyspark: "
                     "a pure stage module uses no Spark; move this to the stage's job or list the module in "
                     "SPARK_SIDE with the reason"]


def test_a_stage_importing_another_stages_job_is_refused(tmp_path):
    found = violations(_copy_with(tmp_path, "evaluation/job.py", "from rec_lib.training.job import run_train_job"))
    assert len(found) == 1 and "a stage never imports another stage's job" in found[0], found


def test_a_stage_importing_another_outside_the_declared_edges_is_refused(tmp_path):
    found = violations(_copy_with(tmp_path, "evaluation/rankers.py", "from rec_lib.training.fit import fit_model"))
    assert len(found) == 1 and "evaluation may import training only through ['rec_lib.training.facade']" in found[0], found
    found = violations(_copy_with(tmp_path / "s", "scoring/lists.py", "from rec_lib.training.facade import COMPONENTS"))
    assert len(found) == 1 and "scoring may import training only through nothing" in found[0], found


def test_a_long_module_is_refused(tmp_path):
    padding = "\n".join(f"X{i} = {i}" for i in range(MAX_MODULE_LINES))
    found = violations(_copy_with(tmp_path, "core/clock.py", padding))
    n = _last_line(tmp_path, "core/clock.py")
    assert found == [f"rec_lib.core.clock is {n} lines (at most {MAX_MODULE_LINES}): split it into modules of one concern"]


def test_a_job_file_importing_more_than_its_entry_point_is_refused(tmp_path):
    shutil.copytree(REPO / "rec_lib", tmp_path / "rec_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "jobs", tmp_path / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    assert entry_point_violations(tmp_path) == []
    job = tmp_path / "jobs" / "train.py"
    job.write_text(job.read_text() + "\nfrom rec_lib.training.fit import fit_model\n")
    notebook = sorted((tmp_path / "notebooks").glob("*.py"))[0]
    notebook.write_text(notebook.read_text() + "\nfrom rec_lib.scoring.kernel import top_k_augmented\n")
    found = entry_point_violations(tmp_path)
    assert len(found) == 2, found
    assert found[0].startswith("jobs/train.py imports ['rec_lib.training.fit', 'rec_lib.training.job']")
    assert f"notebooks/{notebook.name}" in found[1] and "imports rec_lib.scoring.kernel" in found[1]


def test_core_loading_tensorflow_is_refused_but_a_lazy_import_is_not(tmp_path):
    found = violations(_copy_with(tmp_path, "core/clock.py", "import tensorflow"))
    assert len(found) == 1 and "importing core must not load a framework" in found[0], found
    lazy = _copy_with(tmp_path / "lazy", "core/clock.py", "def f():\n    import tensorflow\n    return tensorflow")
    assert violations(lazy) == []


def test_an_action_in_a_lazy_module_is_refused(tmp_path):
    line = "def newest(df):\n    return df.agg(F.max('ts')).first()[0], df.count(), F.count('x')"
    found = violations(_copy_with(tmp_path, "features/transforms.py", line))
    n = _last_line(tmp_path, "features/transforms.py")
    assert found == [f"rec_lib.features.transforms (line {n}) runs a Spark action ({name}): a lazy module only "
                     "builds plans; run it in the job" for name in ("first", "count")]


def test_a_long_function_is_refused(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    found = violations(_copy_with(tmp_path, "core/clock.py", f"def too_long():\n{body}\n    return x0"))
    assert found == [f"rec_lib.core.clock.too_long is {MAX_FUNCTION_LINES + 2} lines (at most {MAX_FUNCTION_LINES}): "
                     "split it along its steps"]


def test_cycles_are_found_by_hand():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _last_line(tmp_path: Path, module_file: str) -> int:
    return len((tmp_path / "rec_lib" / module_file).read_text().splitlines())
