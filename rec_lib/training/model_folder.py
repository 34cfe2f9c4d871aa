"""A trained model version's folder: the one place that knows its layout.

    <train.model_dir>/<model_version>/
        catalogue.npz, vocab.json   the items the model scores and its vocabularies (training.catalogue)
        params.json                 the model's sizes and settings (training.two_tower.ModelParams)
        weights/model.*             the trained weights (a TensorFlow checkpoint without optimizer state)
        blend.json                  how much each part of the score counts (training.blend)
        model.json                  what was trained and how it went; written last, so it marks a complete model
        checkpoints/                per-epoch training state while training runs (deleted once complete)
        failures/                   the workers' error reports of the last failed attempt
        .lock                       held while a run completes the version (core.files.FolderLock)
Every file but the checkpoints (TensorFlow's own) is written through a temporary file and a rename,
so a killed run leaves no half-written file. When `train.model_dir` is a URI, this folder is the
local copy (training.store), and the URI holds the same files but the transient ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from rec_lib.core.files import atomic_write


@dataclass(frozen=True)
class ModelFolder:
    root: Path

    @classmethod
    def of(cls, model_dir: str, version: str) -> "ModelFolder":
        return cls(Path(model_dir) / version)

    @property
    def catalogue(self) -> Path:
        return self.root / "catalogue.npz"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab.json"

    @property
    def params(self) -> Path:
        return self.root / "params.json"

    @property
    def weights(self) -> str:
        """The weights' checkpoint prefix (TensorFlow adds .index / .data-* to it)."""
        return str(self.root / "weights" / "model")

    def write_weight_files(self, files: Dict[str, bytes]) -> None:
        """The weights' files as the worker that trained them returned them (worker.weight_files),
        each written whole (core.files.atomic_write)."""
        folder = Path(self.weights).parent
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in sorted(files.items()):
            atomic_write(folder / name, data)

    @property
    def blend(self) -> Path:
        return self.root / "blend.json"

    @property
    def description(self) -> Path:
        return self.root / "model.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def failures(self) -> Path:
        return self.root / "failures"

    def is_complete(self) -> bool:
        return self.description.exists()

    def is_artifact(self, relative: str) -> bool:
        """Whether a path in the folder (relative to it) is part of the model, which a tracking
        server or a copy on a URI keeps: everything but the transient training state (checkpoints,
        failure reports, the lock and any temporary file)."""
        parts = Path(relative).parts
        return bool(parts) and parts[0] not in (self.checkpoints.name, self.failures.name) \
            and not any(part.startswith(".") for part in parts)

    def artifacts(self) -> list:
        """The folder's top-level entries that are part of the model (`is_artifact`)."""
        return [p for p in sorted(self.root.iterdir()) if self.is_artifact(p.name)]

    def __str__(self) -> str:
        return str(self.root)
