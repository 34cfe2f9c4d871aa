"""What every job entry point shares: arguments, config loading, logging, one-line errors."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Type, TypeVar

import rec_lib
from rec_lib.core.config import load_config, split_settings
from rec_lib.core.errors import RecError
from rec_lib.core.process import LOG_FORMAT

C = TypeVar("C")
DEFAULT_CONF = "conf/local.yaml"


def job_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf-file", default=DEFAULT_CONF, help=f"YAML config (default {DEFAULT_CONF})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set features.recent_items=10 or --set 'evaluate.ks=[0, 5] sql.database=x' (repeatable)")
    parser.add_argument("--input", help="folder of exports; same as --set paths.input=...")
    parser.add_argument("--warehouse", help="folder of Delta tables; same as --set paths.warehouse=...")
    return parser


def settings(args: argparse.Namespace) -> List[str]:
    extra = []  # the two folders as quoted YAML text: a folder named yes, 1e3 or null stays that name
    if getattr(args, "input", None):
        extra.append(f"paths.input={json.dumps(args.input)}")
    if getattr(args, "warehouse", None):
        extra.append(f"paths.warehouse={json.dumps(args.warehouse)}")
    return [s for group in args.set for s in split_settings(group)] + extra


def load_job_config(cls: Type[C], args: argparse.Namespace) -> C:
    return load_config(cls, args.conf_file, settings(args))


def _not_py4j_retry(record: logging.LogRecord) -> bool:
    # py4j logs (at INFO, on the root logger, with a traceback) every stale pooled connection it
    # then replaces and retries; Horovod's driver threads make this common. Not a failure.
    return record.getMessage() != "Exception while sending command."


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT,
                        stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_py4j_retry)
    # faiss's loader reports at INFO each SIMD build it looks for (the abi3 wheel has one generic build)
    for noisy in ("py4j", "py4j.clientserver", "py4j.java_gateway", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Petastorm 0.13 uses pyarrow's legacy file systems (the reason pyarrow is pinned at 14).
    warnings.filterwarnings("ignore", category=FutureWarning, module="petastorm")


def run_job(body: Callable[[], None]) -> int:
    """Run a job body; a RecError becomes one line on stderr and its exit code."""
    configure_logging()
    # which library ran: the checkout, an installed wheel or a spark-submit --py-files zip
    logging.getLogger("rec_lib").info("rec_lib %s from %s", rec_lib.__version__, Path(rec_lib.__file__).parent)
    try:
        body()
    except RecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def run_spark_job(argv: Optional[Sequence[str]], description: str, config_cls: Type[C],
                  stage: Callable[..., object]) -> int:
    """The whole of a Spark job's `main`: parse arguments, load its config, take the session, run
    the library's stage function and print its summary lines."""
    args = parse(job_parser(description), argv)

    def body() -> None:
        from rec_lib.platform.io import check_commit_safety
        from rec_lib.platform.spark import get_spark

        cfg = load_job_config(config_cls, args)
        spark = get_spark(cfg.spark)
        paths = getattr(cfg, "paths", None)
        if paths is not None:
            check_commit_safety(spark, paths.warehouse, paths.single_writer)
        summary = stage(spark, cfg)
        print("\n".join(summary.lines()))
        failure = getattr(summary, "failure", None)  # e.g. a failed evaluation gate: its lines, then one error line
        if failure is not None:
            raise failure

    return run_job(body)


def parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    return parser.parse_args(list(argv) if argv is not None else None)
