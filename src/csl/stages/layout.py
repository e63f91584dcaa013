"""Where each stage reads and writes, relative to the project directory."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from csl.params import Params


PREPARED = "data/prepared"
RUNS = "runs"
REPORTS = "reports"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class Layout:
    project: Path
    params: Params

    @property
    def prepared(self) -> Path:
        return self.project / PREPARED

    def pretrain_dir(self, variant: str) -> Path:
        return self.project / RUNS / variant / "pretrain"

    def eval_dir(self, variant: str) -> Path:
        return self.project / RUNS / variant / "eval"

    @property
    def reports(self) -> Path:
        return self.project / REPORTS

    def checkpoint_dir(self, variant: str, data_hash: str) -> Path:
        """Checkpoints are keyed by the variant's config and the data, so a resume never
        continues a run that had other settings."""
        cfg = json.dumps({"method": self.params.method(variant).as_dict(), "data": data_hash}, sort_keys=True)
        key = hashlib.sha256(cfg.encode()).hexdigest()[:12]
        return self.project / CHECKPOINTS / variant / key
