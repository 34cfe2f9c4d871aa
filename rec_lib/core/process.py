"""What every process of ours sets up first: the log format, and the threads TensorFlow may use."""
from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def worker_setup(tf_threads: int = 0) -> None:
    """A Spark or Horovod worker process: progress lines go to its stderr in the jobs' format (when
    nothing configured logging yet); TensorFlow gets `tf_threads` intra-op threads and one inter-op
    thread (0: TensorFlow's default) and no C++ info logs. Takes effect only before TensorFlow is
    imported in the process."""
    if tf_threads > 0:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(tf_threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
