"""The files scoring ships to every executor (`SparkContext.addFile`) and each task maps: the
candidates in tiles of `score.max_tile_items` (a task maps one tile at a time, so a worker holds one
tile whatever the catalogue's size) and, for reasons, the history items' blocks (streamed to the
file a partition at a time, so the driver holds one chunk).
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from rec_lib.scoring import reasons
from rec_lib.scoring.kernel import augment_candidates, set_threads
from rec_lib.scoring.lists import Candidates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileFiles:
    """The candidates as files shipped to every executor (`SparkContext.addFile`), read by memory
    map: a task maps one tile at a time, so its memory holds one tile whatever the catalogue's size.
    `tiles`: (first candidate index, file name) per tile of augmented vectors [n, d + 1]."""
    tiles: Tuple[Tuple[int, str], ...]
    item_ids: str  # str [N]
    category: str  # int32 [N]
    is_new: str  # bool [N]
    new_index: str  # int64 [N_new]: the new candidates' indices (the exposure floor's items)
    bias: str  # float64 [N]: the candidates' biases (the personal order subtracts them)
    prefix: str = ""
    explain: Optional[str] = None  # npz of the candidates' reasons.Explanations (None: no reasons)
    similar: Optional[str] = None  # float32 [N, W]: the candidates' reasons.similar_blocks (with explain)


def _save(spark: SparkSession, folder: str, prefix: str, name: str, array: np.ndarray) -> str:
    path = os.path.join(folder, f"{prefix}-{name}.npy")
    np.save(path, array)
    spark.sparkContext.addFile(path)
    return os.path.basename(path)


def ship_candidates(spark: SparkSession, cands: Candidates, max_tile_items: int, folder: str) -> TileFiles:
    """Write the candidate files under `folder` (names unique to this call) and add them to the job."""
    prefix = f"rec-candidates-{uuid.uuid4().hex[:12]}"

    def save(name: str, array: np.ndarray) -> str:
        return _save(spark, folder, prefix, name, array)

    tiles = tuple((lo, save(f"tile{lo}", augment_candidates(cands.vectors[lo:lo + max_tile_items],
                                                             cands.bias[lo:lo + max_tile_items])))
                  for lo in range(0, len(cands), max_tile_items))
    explain = similar = None
    if cands.explain is not None:
        path = os.path.join(folder, f"{prefix}-explain.npz")
        np.savez(path, **cands.explain.arrays())
        spark.sparkContext.addFile(path)
        explain = os.path.basename(path)
        similar = save("similar", reasons.similar_blocks(cands.vectors, cands.explain.similar_layout()))
    return TileFiles(tiles=tiles, item_ids=save("ids", cands.item_ids.astype(str)),
                     category=save("category", cands.category.astype(np.int32)), is_new=save("new", cands.is_new),
                     new_index=save("new-index", np.flatnonzero(cands.is_new).astype(np.int64)),
                     bias=save("bias", cands.bias.astype(np.float64)), prefix=prefix, explain=explain,
                     similar=similar)


class TaskCandidates:
    """What a scoring task maps of the candidate files (see TileFiles)."""

    def __init__(self, files: TileFiles):
        from pyspark import SparkFiles, TaskContext

        task = TaskContext.get()
        set_threads(task.cpus() if task is not None else 1)

        def mapped(name: str) -> np.ndarray:
            return np.load(SparkFiles.get(name), mmap_mode="r")

        self.mapped = mapped
        self.item_ids, self.category, self.is_new = mapped(files.item_ids), mapped(files.category), mapped(files.is_new)
        self.new_index = np.asarray(mapped(files.new_index))
        self.bias = mapped(files.bias)
        # one tile stays mapped for the whole task; several are mapped in turn for each block of users
        self.tiles = ([(files.tiles[0][0], (lambda tile=mapped(files.tiles[0][1]): tile))] if len(files.tiles) == 1
                      else [(start, (lambda name=name: mapped(name))) for start, name in files.tiles])
        self.explain = self.similar_rows = None
        if files.explain is not None:
            with np.load(SparkFiles.get(files.explain)) as data:
                self.explain = reasons.Explanations.from_arrays(data)
            self.similar_rows = mapped(files.similar)

    def columns(self, idx: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """float32 [.., hi - lo]: columns lo:hi of the vectors of candidates idx (-1: zeros); only
        those columns of each row are read."""
        out = np.zeros(idx.shape + (hi - lo,), np.float32)
        for start, tile_of in self.tiles:
            tile = tile_of()
            here = (idx >= start) & (idx < start + tile.shape[0])
            out[here] = tile[idx[here] - start, lo:hi]
        return out

    def similar(self, idx: np.ndarray) -> np.ndarray:
        """float32 [.., W]: the reasons.similar_blocks of candidates idx (-1: candidate 0's, never read)."""
        return np.take(self.similar_rows, np.maximum(idx, 0), axis=0)


@dataclass(frozen=True)
class HistoryFile:
    """The tower and text blocks of the items users interacted with, each block unit length and in
    its principal directions where it has them (reasons.similar_blocks), as a file shipped to every executor (float16 [M, width]) and read by memory map: what a similar_to
    reason compares the recommended item with (reasons.closest_history)."""
    vectors: str
    parts: Tuple[Tuple[str, int, int], ...]  # (part, first column, last + 1) in the file
    item_ids: str  # str [M]: row i's item id
    sorted_ids: str  # str [M]: the items' ids, sorted
    order: str  # int64 [M]: the file row of each of sorted_ids
    depth: int = 20  # a user's most recent items looked at (score.reason_history)


HISTORY_WRITE_ROWS = 4096  # item rows in one chunk of the history file (the driver holds one at a time)


def _history_chunks(layout: Tuple[Tuple[str, int, int, Optional[np.ndarray]], ...]):
    """mapInPandas function: item rows (item_id, embedding) -> chunks of at most HISTORY_WRITE_ROWS
    items (ids, blob: their similar parts' unit blocks (reasons.similar_blocks of `layout`), float16
    bytes [n, width])."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in frames:
            for lo in range(0, len(pdf), HISTORY_WRITE_ROWS):
                part = pdf.iloc[lo:lo + HISTORY_WRITE_ROWS]
                vectors = np.stack([np.asarray(v, np.float32) for v in part["embedding"]])
                unit = reasons.similar_blocks(vectors, layout, unit=True)
                yield pd.DataFrame({"ids": [part["item_id"].tolist()], "blob": [unit.astype(np.float16).tobytes()]})

    return run


def ship_history(spark: SparkSession, item_emb: DataFrame, cands: Candidates, folder: str) -> Optional[HistoryFile]:
    """The history file of every item of `item_emb`; None where there is nothing to name (no
    reasons, no tower or text part).
    The executors cut the rows into float16 chunks of HISTORY_WRITE_ROWS items, streamed to the file
    a partition at a time (toLocalIterator), so the driver holds one chunk and the items' ids (a
    vocabulary, as the candidates'), whatever the catalogue's size."""
    if cands.explain is None:
        return None
    layout, columns = cands.explain.similar_layout(), cands.explain.similar_bounds()
    if not layout:
        return None
    start = time.perf_counter()
    width = sum(hi - lo for lo, hi in columns.values())
    path = os.path.join(folder, f"rec-history-{uuid.uuid4().hex[:12]}.npy")
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(item_emb.count(), width))
    rows = (item_emb.select("item_id", "embedding")
            .mapInPandas(_history_chunks(layout), "ids array<string>, blob binary")
            .toLocalIterator())
    ids: List[str] = []  # the items' vocabulary: row i of the file is ids[i]
    for row in rows:
        out[len(ids):len(ids) + len(row["ids"])] = np.frombuffer(row["blob"], np.float16).reshape(-1, width)
        ids.extend(row["ids"])
    out.flush()
    del out
    spark.sparkContext.addFile(path)
    log.info("reasons: the history items' blocks written in %.1f s", time.perf_counter() - start)
    parts = tuple((name, lo, hi) for name, (lo, hi) in columns.items())
    names = np.asarray(ids, dtype=str)
    order = np.argsort(names, kind="stable")
    files = {}
    for name, array in (("item_ids", names), ("sorted_ids", names[order]), ("order", order.astype(np.int64))):
        files[name] = path.replace(".npy", f"-{name}.npy")
        np.save(files[name], array)
        spark.sparkContext.addFile(files[name])
    return HistoryFile(vectors=os.path.basename(path), parts=parts,
                       **{name: os.path.basename(file) for name, file in files.items()})


class TaskHistory:
    """What a scoring task maps of the history file (HistoryFile), once per task."""

    def __init__(self, files: HistoryFile):
        from pyspark import SparkFiles

        def mapped(name: str) -> np.ndarray:
            return np.load(SparkFiles.get(name), mmap_mode="r")

        self.depth = files.depth
        self.vectors, self.names = mapped(files.vectors), mapped(files.item_ids)
        self.sorted_ids, self.order = mapped(files.sorted_ids), mapped(files.order)
        self.columns = {name: (lo, hi) for name, lo, hi in files.parts}

    def rows(self, recent: Sequence[Optional[Sequence[str]]]) -> np.ndarray:
        """int64 [B, H]: the file rows of each user's `depth` newest items, in their order, -1
        padded (as reasons.padded_history); an item the file does not hold is left out."""
        kept = [r[:self.depth] if r is not None else () for r in recent]
        lengths = np.fromiter((len(r) for r in kept), np.int64, len(kept))
        found = np.zeros(0, np.int64)
        if lengths.sum() and len(self.sorted_ids):
            ids = np.concatenate([r for r in kept if len(r)]).astype(str)
            at = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
            found = np.where(self.sorted_ids[at] == ids, self.order[at], -1)
        user = np.repeat(np.arange(len(kept)), lengths)[:len(found)][found >= 0]
        counts = np.bincount(user, minlength=len(kept))
        out = np.full((len(kept), int(counts.max(initial=0))), -1, np.int64)
        out[user, np.arange(len(user)) - np.repeat(np.cumsum(counts) - counts, counts)] = found[found >= 0]
        return out

    def block(self, name: str, at: np.ndarray) -> np.ndarray:
        """float32 [.., w]: the unit rows `at` of a part's block (ship_history wrote them unit)."""
        lo, hi = self.columns[name]
        return np.asarray(self.vectors[at.ravel(), lo:hi], np.float32).reshape(at.shape + (hi - lo,))

    def item_ids(self, at: np.ndarray) -> np.ndarray:
        return self.names[at].astype(object)
