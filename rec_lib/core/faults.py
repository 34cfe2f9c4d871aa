"""Named points inside the jobs' writes where a process can be killed on purpose (fault injection),
so that tests prove what each job guarantees after a kill at exactly that point.

    REC_KILL_AT=<point>       SIGKILL the process the first time it reaches <point>
    REC_KILL_AT=<point>#<n>   ... the n-th time (e.g. after the second chunk of a write)

Without the variable a point costs one environment lookup. The points (docs/input-and-tables.md, "Failure and recovery"):
features.merged:<table> after each base table's MERGE; embed.chunk_written after each chunk of
text embeddings; train.user_embeddings_written between the two embedding tables; score.lists_written
after the recommendations partition, before its figures and views.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "REC_KILL_AT"
_reached: Counter = Counter()


def point(name: str) -> None:
    """Kill this process here when REC_KILL_AT names this point (and this is the n-th time). A
    process that leads its own process group (a job started in a new session) takes the group
    with it, as a lost machine takes its JVM."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("#")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] == int(nth or 1):
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
