"""scripts/bench_scale.py's settings (the benchmark itself is run by `make bench-scale`)."""
import importlib.util

import pytest

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("bench_scale", REPO / "scripts" / "bench_scale.py")
bench_scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_scale)


def test_the_executors_heap_follows_the_local_clusters_workers():
    # not given: what each worker offers (the third number, MB)
    assert bench_scale.executor_memory("local-cluster[2,1,2048]", None) == "2048m"
    assert bench_scale.executor_memory("local-cluster[ 3, 2, 3000 ]", None) == "3000m"
    # given and within a worker's MB: kept as written (1536m, 2g = 2048 MB, 1500000k = 1465 MB)
    for given in ("1536m", "2g", "1500000k", "2048"):
        assert bench_scale.executor_memory("local-cluster[2,1,2048]", given) == given
    # other masters: their executors are the driver's JVM, nothing to set
    assert bench_scale.executor_memory("local[*]", "2g") is None


def test_a_heap_no_worker_can_hold_is_refused():
    with pytest.raises(SystemExit, match=r"--executor-memory 3g is more than the 2048 MB each worker of "
                                         r"local-cluster\[2,1,2048\] offers"):
        bench_scale.executor_memory("local-cluster[2,1,2048]", "3g")
    with pytest.raises(SystemExit, match="must be a JVM size such as 2g or 1536m, got 'lots'"):
        bench_scale.executor_memory("local-cluster[2,1,2048]", "lots")
