"""The SQL views downstream consumers query, kept as versioned files in `rec_lib/platform/sql/`.

Each file `V<NNN>__<view>.sql` holds one `CREATE OR REPLACE VIEW {{view}} AS ...` statement and is
applied in version order, so a view may read the views of lower versions. A published view keeps
its name and columns; a change adds columns or a new file. Placeholders:

- `{{view}}`: this file's view, in `sql.catalog`.`sql.database` (or `sql.database`) when set;
- `{{view:<name>}}`: another view of a lower version;
- `{{table:<name>}}`: a Delta table of the warehouse (schema.TABLES), as ``delta.`<path>` ``;
- `{{setting:<key>}}`: a `sql` setting as a SQL string literal (`language`: sentences in en or zh).

A view whose tables do not exist yet (the evaluation has never run, say) is left out and reported,
not an error: the job that writes the table applies it later. Locally the views live in the
session's catalog; on Databricks in the workspace metastore, where analysts query them.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pyspark.sql import SparkSession

from rec_lib.core.config import SqlJobConfig, SqlSection
from rec_lib.core.errors import RecError
from rec_lib.core.schema import TABLES
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import quoted
from rec_lib.platform.filesystem import qualified_path

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent / "sql"
FILE_NAME = re.compile(r"^V(\d{3})__([a-z][a-z0-9_]*)\.sql$")
PLACEHOLDER = re.compile(r"\{\{\s*(view|table|setting)(?::([a-z0-9_]+))?\s*\}\}")


class SqlViewError(RecError):
    """A malformed view file: bad name, duplicate version, unknown table or view."""


@dataclass(frozen=True)
class ViewFile:
    version: int
    name: str  # the view's name
    path: Path

    @property
    def label(self) -> str:
        return f"V{self.version:03d} {self.name}"


@dataclass(frozen=True)
class AppliedViews:
    database: Optional[str]  # where the views are: <catalog>.<database>, <database>, or None (the current one)
    applied: Tuple[ViewFile, ...]
    waiting: Tuple[Tuple[ViewFile, Tuple[str, ...]], ...]  # views left out, with the missing tables
    tables: Tuple[str, ...] = ()  # sql.tables registered by name
    tables_waiting: Tuple[str, ...] = ()  # sql.tables not written yet

    def lines(self) -> List[str]:
        where = f"database {self.database}" if self.database else "the current database"
        out = [f"SQL views in {where}: {len(self.applied)} applied, {len(self.waiting)} waiting"]
        out += [f"  view {v.label}: applied" for v in self.applied]
        out += [f"  view {v.label}: waiting for table(s) {', '.join(missing)}" for v, missing in self.waiting]
        out += [f"  table {name}: registered" for name in self.tables]
        out += [f"  table {name}: waiting (not written yet)" for name in self.tables_waiting]
        return out


def view_files(folder: Path = SQL_DIR) -> List[ViewFile]:
    """The folder's view files in version order; a misnamed .sql file or a repeated version or
    view name is an error (a file silently skipped would be a view silently missing)."""
    files = []
    for path in sorted(Path(folder).glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise SqlViewError(f"{path.name}: view files are named V<NNN>__<view_name>.sql")
        files.append(ViewFile(int(match.group(1)), match.group(2), path))
    for attr in ("version", "name"):
        values = [getattr(f, attr) for f in files]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise SqlViewError(f"view files in {folder} repeat the {attr} {repeated[0]}")
    return sorted(files, key=lambda f: f.version)


def qualified_view(name: str, namespace: Optional[str]) -> str:
    """A view's name for SQL: `namespace` is already quoted (SqlSection.namespace)."""
    return f"{namespace}.`{name}`" if namespace else f"`{name}`"


def referenced_tables(view: ViewFile) -> List[str]:
    return sorted({m.group(2) for m in PLACEHOLDER.finditer(view.path.read_text()) if m.group(1) == "table" and m.group(2)})


def render(view: ViewFile, table_paths: dict, earlier: Iterable[str], namespace: Optional[str],
           settings: Optional[Dict[str, str]] = None) -> str:
    """The file's statement with its placeholders replaced; `table_paths` maps table names to
    qualified paths, `earlier` names the views of lower versions, `namespace` is the views' quoted
    `catalog`.`database` (or None), `settings` the values of `{{setting:<key>}}`."""
    earlier = set(earlier)
    settings = settings or {}

    def substitute(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "view" and name is None:
            return qualified_view(view.name, namespace)
        if kind == "view" and name in earlier:
            return qualified_view(name, namespace)
        if kind == "table" and name in table_paths:
            return f"delta.{quoted(table_paths[name])}"
        if kind == "setting" and name in settings:
            return io.sql_literal(settings[name])
        what = f"{kind}:{name}" if name else kind
        raise SqlViewError(f"{view.path.name}: unknown placeholder {{{{{what}}}}}; tables: {sorted(TABLES)}, "
                           f"earlier views: {sorted(earlier)}, settings: {sorted(settings)}")

    return PLACEHOLDER.sub(substitute, view.path.read_text()).strip().rstrip(";")


def _views_read(view: ViewFile) -> set:
    return {m.group(2) for m in PLACEHOLDER.finditer(view.path.read_text()) if m.group(1) == "view" and m.group(2)}


def apply_sql(spark: SparkSession, warehouse: str, sql: SqlSection) -> AppliedViews:
    """What the jobs that write tables call afterwards: the views, and the tables `sql.tables` names."""
    return apply_views(spark, warehouse, sql.database, catalog=sql.catalog, tables=sql.tables, language=sql.language)


def register_tables(spark: SparkSession, warehouse: str, names: Sequence[str],
                    namespace: Optional[str]) -> Tuple[List[str], List[str]]:
    """`CREATE TABLE IF NOT EXISTS <namespace>.<name> USING DELTA LOCATION '<path>'` for each
    table written so far: an external table over the warehouse's folder, so the name and the path
    read the same data. Returns (registered, not written yet)."""
    registered, waiting = [], []
    for name in names:
        path = io.table_path(warehouse, TABLES[name])
        if not io.delta_exists(spark, path):
            waiting.append(name)
            continue
        location = qualified_path(spark, path).replace("\\", "\\\\").replace("'", "\\'")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {qualified_view(name, namespace)} USING DELTA LOCATION '{location}'")
        registered.append(name)
    return registered, waiting


def apply_views(spark: SparkSession, warehouse: str, database: Optional[str] = None,
                folder: Path = SQL_DIR, catalog: Optional[str] = None, tables: Sequence[str] = (),
                language: str = "en") -> AppliedViews:
    """Create or replace every view whose tables exist, in version order, on the warehouse's
    tables (cheap and idempotent: the jobs that write a table call it afterwards), in `database`
    of `catalog` (each None: the session's current one); register the warehouse tables named in
    `tables` there too. `language`: sql.language, the explained view's sentences."""
    where = SqlSection(database, catalog, list(tables), language)
    namespace = where.namespace
    files = view_files(folder)
    read = {t for f in files for t in referenced_tables(f)}
    unknown = sorted(read - set(TABLES))
    if unknown:
        raise SqlViewError(f"view files read unknown table(s) {unknown}; tables: {sorted(TABLES)}")
    for i, view in enumerate(files):
        undefined = sorted(_views_read(view) - {f.name for f in files[:i]})
        if undefined:
            raise SqlViewError(f"{view.path.name}: unknown placeholder {{{{view:{undefined[0]}}}}}; a view may "
                               f"read only views of lower versions: {[f.name for f in files[:i]]}")
    paths = {name: io.table_path(warehouse, TABLES[name]) for name in sorted(read)}
    present = {name: io.delta_exists(spark, path) for name, path in paths.items()}
    qualified = {name: qualified_path(spark, path) for name, path in paths.items() if present[name]}
    if namespace:
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {namespace}")

    applied, waiting, created = [], [], []
    for view in files:
        missing = tuple(t for t in referenced_tables(view) if not present[t])
        blocked = tuple(f"view {v}" for v in sorted(_views_read(view) - set(created)))
        if missing or blocked:
            waiting.append((view, missing + blocked))
            continue
        spark.sql(render(view, qualified, created, namespace, {"language": where.language}))
        log.info("applied view %s", view.label)
        applied.append(view)
        created.append(view.name)
    registered, not_written = register_tables(spark, warehouse, where.tables, namespace)
    return AppliedViews(".".join(where.parts) or None, tuple(applied), tuple(waiting), tuple(registered),
                        tuple(not_written))


def run_sql_job(spark: SparkSession, cfg: SqlJobConfig) -> AppliedViews:
    """The SQL job: (re)create every view on the warehouse's current tables, register `sql.tables`."""
    return apply_sql(spark, cfg.paths.warehouse, cfg.sql)


__all__ = ["SQL_DIR", "SqlViewError", "ViewFile", "AppliedViews", "view_files", "render", "apply_views", "apply_sql",
           "register_tables", "run_sql_job"]


# --------------------------------------------------------------------------------------------
# Entry point: `rec-apply-sql`, `python -m jobs.apply_sql`, spark-submit jobs/apply_sql.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Create or replace the SQL views downstream consumers query (rec_lib/platform/sql/V*.sql, in version order)."""
CONFIG = SqlJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_sql_job)
