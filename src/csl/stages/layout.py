"""Where each stage reads and writes, relative to the project directory."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from csl.evaluate.config import ProtocolItem
from csl.params import Params, Variant


PREPARED = "data/prepared"
TRANSFER = "data/transfer"
RUNS = "runs"
REPORTS = "reports"
CHECKPOINTS = "checkpoints"


def variant_rel(variant: str) -> str:
    """``runs/<variant>``: the one place that spells a variant's output path (locally, and as the key
    prefix of its outputs in ``storage.artifacts``)."""
    return f"{RUNS}/{variant}"


@dataclass(frozen=True)
class Layout:
    project: Path
    params: Params

    @property
    def prepared(self) -> Path:
        return self.project / PREPARED

    @property
    def data_dir(self) -> Path:
        """The prepared dataset and its origin record (``prepared.origin.json``) together."""
        return self.prepared.parent

    def variant_dir(self, variant: Variant) -> Path:
        """Everything a variant's stages write (pretrain, eval, register)."""
        return self.project / variant_rel(variant.name)

    def pretrain_dir(self, variant: Variant) -> Path:
        return self.variant_dir(variant) / "pretrain"

    def eval_dir(self, variant: Variant) -> Path:
        return self.variant_dir(variant) / "eval"

    def features_dir(self, variant: Variant) -> Path:
        """Frozen features of the trained (and random-init) encoder on the prepared dataset."""
        return self.variant_dir(variant) / "features"

    def protocol_dir(self, variant: Variant, protocol: str, item: str | None = None) -> Path:
        """``runs/<variant>/eval/<protocol>[/<item>]``: a protocol's outputs (an item is a label
        fraction as params.yaml writes it, e.g. ``0.01``, or a transfer target's name). Every protocol
        writes under ``eval/`` so that ``register`` depends on all of them."""
        d = self.eval_dir(variant) / protocol
        return d / item if item is not None else d

    def item_dir(self, variant: Variant, item: ProtocolItem) -> Path:
        """Where a protocol item writes: ``eval/<probe>``, ``eval/finetune/<F>``, ``eval/transfer/<T>``..."""
        if item.kind == "probe":
            return self.protocol_dir(variant, item.item)
        return self.protocol_dir(variant, item.kind, item.item)

    def transfer_data(self, target: str) -> Path:
        return self.project / TRANSFER / target

    def register_dir(self, variant: Variant) -> Path:
        return self.variant_dir(variant) / "register"

    @property
    def reports(self) -> Path:
        return self.project / REPORTS

    def checkpoint_dir(self, variant: Variant, data_hash: str, code: str | None = None,
                       parent: str | None = None) -> Path:
        """Checkpoints are keyed by the variant's config, the data and the code that computes the
        result (:func:`csl.stages.deps.fingerprint`: the training code's source as this process
        imports it, torch's and Lightning's versions), so a resume only ever continues the same
        computation: a run with other settings or other code starts afresh. ``train.compile`` is
        left out: it changes how the step runs, not what it computes, and the checkpoints are the
        same either way. ``precision: auto`` enters as what it resolves to on this machine
        (:func:`csl.precision.resolve_precision`): a bf16 checkpoint never resumes in fp32. A warm start
        (``train.init_from``) enters as its parent's sha256 (``parent``), not its URI: when an alias
        moves to another encoder, the run starts afresh from it."""
        from csl.precision import resolve_precision
        from csl.stages.deps import fingerprint

        method = variant.as_dict()
        method["train"].pop("compile", None)
        t = method["train"]
        t["precision"] = resolve_precision(t.get("precision", "auto"), t.get("accelerator", "auto"))
        if t.get("init_from") is not None:
            t["init_from"] = parent
        cfg = json.dumps({"method": method, "data": data_hash, "code": code or fingerprint()}, sort_keys=True)
        key = hashlib.sha256(cfg.encode()).hexdigest()[:12]
        return self.project / CHECKPOINTS / variant.name / key

    def remote_checkpoint_dir(self, variant: Variant, data_hash: str, code: str | None = None,
                              parent: str | None = None) -> str | None:
        """``storage.checkpoints`` + the same ``<variant>/<key>`` as the local directory, or None."""
        base = self.params.storage.checkpoint_uri
        if not base:
            return None
        rel = self.checkpoint_dir(variant, data_hash, code, parent).relative_to(self.project / CHECKPOINTS)
        return f"{base.rstrip('/')}/{rel.as_posix()}"

    def check_storage(self) -> None:
        """Fail before any work when the artifact bucket cannot be reached (the error names the fix;
        the checkpoint bucket is checked by ``fit``, which uses it)."""
        if self.params.storage.artifact_uri:
            from csl.io import s3

            s3.check_bucket(self.params.storage.artifact_uri)

    def upload_artifacts(self, out: Path) -> list[str]:
        """Upload a stage's output directory to ``storage.artifacts`` (same relative path)."""
        base = self.params.storage.artifact_uri
        if not base:
            return []
        from csl.io import s3

        return s3.upload_dir(out, f"{base.rstrip('/')}/{out.relative_to(self.project).as_posix()}")
