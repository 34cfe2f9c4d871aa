"""Readable progress lines for long jobs."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def timed(log: logging.Logger, step: str) -> Iterator[None]:
    """Log `step ...` on entry and `step done in 1.2 s` on exit."""
    start = time.perf_counter()
    log.info("%s ...", step)
    yield
    log.info("%s done in %.1f s", step, time.perf_counter() - start)
