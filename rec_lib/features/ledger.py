"""The feature job's run ledger (table `feature_runs`): what each run read and whether it finished.

A run records its export files (path, size, modification time, the file system's checksum where it
keeps one) and their fingerprint before its first write, and marks itself complete after its last.
The next run reads the runs that never completed (a kill, a lost driver):
- one whose exports are still the same (same fingerprint) is completed by this run, under its run id,
  so its rows carry one id whether or not it was interrupted (its MERGEs are idempotent);
- one whose exports have changed since is marked interrupted and reported: rows of its exports that
  it had not merged are in the tables only where the current exports hold them too.
And before any write, an export with too large a share of rejected rows stops the run
(`input.max_quarantine_share`): a broken export is refused, not loaded as a mostly empty day.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Dict, List, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class ExportFile:
    source: str  # items | users | events
    path: str
    size: int  # bytes
    mtime: int  # modification time, ms since the epoch
    checksum: Optional[str]  # "<algorithm>:<hex>" where the file system keeps one (HDFS, some object stores)


def fingerprint(files: Sequence[ExportFile]) -> str:
    """sha256 of every file's source, path, size, modification time and checksum, in path order."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: (f.source, f.path)):
        digest.update(json.dumps(asdict(f), sort_keys=True).encode())
    return digest.hexdigest()


def files_json(files: Sequence[ExportFile]) -> str:
    return json.dumps([asdict(f) for f in sorted(files, key=lambda f: (f.source, f.path))])


@dataclass(frozen=True)
class Unfinished:
    """A ledger row whose run never completed."""

    run_id: str
    fingerprint: str
    started_at: datetime


@dataclass(frozen=True)
class Resumption:
    run_id: str  # the id this run writes under
    completes: Optional[str]  # the newest unfinished run on the same exports, which this run completes
    closed: Tuple[Unfinished, ...]  # the other unfinished runs: marked interrupted in the ledger
    note: Optional[str]  # what to tell the user, also kept in this run's ledger row


def _when(u: Unfinished) -> str:
    return f"{u.run_id} (started {u.started_at:%Y-%m-%d %H:%M:%S})"


def resume(unfinished: Sequence[Unfinished], current: str, configured_run_id: Optional[str],
           fresh_run_id: str) -> Resumption:
    """Which run id this run writes under, given the unfinished runs and the current exports'
    fingerprint: a configured run.run_id, else the newest unfinished run on the same exports (this
    run completes it), else a fresh id. Every other unfinished run is closed as interrupted."""
    same = sorted((u for u in unfinished if u.fingerprint == current), key=lambda u: u.started_at)
    changed = sorted((u for u in unfinished if u.fingerprint != current), key=lambda u: u.started_at)
    run_id = configured_run_id or (same[-1].run_id if same else fresh_run_id)
    notes = []
    if same:
        notes.append(f"run {', '.join(_when(u) for u in same)} did not complete: the same exports are loaded again "
                     f"as run {run_id}")
    if changed:
        notes.append(f"run {', '.join(_when(u) for u in changed)} did not complete and the exports have changed "
                     "since: rows of its exports not merged before the interruption are in the tables only where "
                     "these exports hold them too (restore its exports and run again to load them)")
    closed = tuple(u for u in same + changed if u.run_id != run_id)
    return Resumption(run_id, same[-1].run_id if same else None, closed, "; ".join(notes) or None)


def over_quarantine_share(counts: Mapping[str, Tuple[int, Mapping[str, int]]], limits: Mapping[str, float]) -> List[str]:
    """One line per export whose quarantined share (quarantined / all rows) is above its limit, with
    the reasons; `counts`: source -> (accepted rows, quarantined rows by reason). An empty export
    is never over."""
    out = []
    for source, (accepted, reasons) in counts.items():
        quarantined = sum(reasons.values())
        total = accepted + quarantined
        limit = limits.get(source, 1.0)
        if total and quarantined / total > limit:
            why = ", ".join(f"{r}: {n:,}" for r, n in sorted(reasons.items(), key=lambda t: (-t[1], t[0])))
            out.append(f"{source}: {quarantined:,} of {total:,} rows ({quarantined / total:.1%}) would be quarantined "
                       f"({why}), above input.max_quarantine_share.{source}={limit:g}")
    return out


def table_versions(versions: Dict[str, Optional[int]]) -> Dict[str, int]:
    return {name: int(v) for name, v in versions.items() if v is not None}
