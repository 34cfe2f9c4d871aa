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
Every file but the weights and the checkpoints (TensorFlow's own) is written through a temporary
file and a rename, so a killed run leaves no half-written file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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

    def artifacts(self) -> list:
        """What a tracking server keeps of the folder: everything but the transient training state
        (checkpoints, failure reports, the lock and any temporary file)."""
        transient = {self.checkpoints.name, self.failures.name}
        return [p for p in sorted(self.root.iterdir()) if p.name not in transient and not p.name.startswith(".")]

    def __str__(self) -> str:
        return str(self.root)
