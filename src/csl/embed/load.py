"""``csl.load_encoder(uri)``: the feature extractor of a csl encoder, wherever it is kept.

* ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` (or ``NAME``): a version in the MLflow model
  registry of the current tracking store; it must be a csl encoder (its version carries the tag
  ``csl.encoder_sha256`` that ``csl register`` writes, and the model is csl's FeatureExtractor);
* ``runs:/RUN_ID/encoder``: the same model logged by a run;
* a path to an ``encoder.pt`` written by ``csl pretrain``.

    >>> enc = csl.load_encoder("models:/csl-encoder-fashion-mnist-simclr-small@champion")
    >>> enc.image_shape, enc.embed(pil_images).shape   # (1, 28, 28), (N, 128)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csl.encoders.saved import FeatureExtractor, load_feature_extractor
from csl.errors import CslError


@dataclass(frozen=True)
class EncoderSource:
    """Where an encoder came from: ``uri`` as given, the registry version (or ``""``) and the sha256
    of its ``encoder.pt`` where known (the resumable ``csl embed`` keys its work on it)."""

    uri: str
    model_version: str
    encoder_sha256: str


def is_model_uri(uri: str) -> bool:
    return uri.startswith(("models:/", "runs:/"))


def _refuse(uri: str, why: str) -> CslError:
    return CslError(f"{uri} is not a csl encoder: {why}. csl encoders are registered by the pipeline's register "
                    "stage (csl register) as csl-encoder-<dataset>-<variant>; list them with csl registry list")


def _from_registry(uri: str) -> tuple[FeatureExtractor, EncoderSource]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from csl.tracking import model_registry

    if uri.startswith("runs:/"):
        version_uri, sha = uri, ""
    else:
        mv = model_registry.resolve_encoder(uri)
        sha = mv.tags["csl.encoder_sha256"]
        version_uri = f"models:/{mv.name}/{mv.version}"
    try:
        info = mlflow.models.get_model_info(version_uri)
    except (MlflowException, OSError) as e:
        raise CslError(f"cannot read the model {uri} ({str(e).splitlines()[0]})") from None
    if "pytorch" not in info.flavors:
        raise _refuse(uri, f"it is a model of flavor(s) {', '.join(sorted(info.flavors))}, not an MLflow PyTorch model")
    try:
        model = mlflow.pytorch.load_model(version_uri, map_location="cpu")
    except Exception as e:  # unpickling another library's module, missing artifacts, ...
        raise _refuse(uri, f"its PyTorch model cannot be loaded here ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(model, FeatureExtractor):
        raise _refuse(uri, f"its model is a {type(model).__module__}.{type(model).__qualname__}, not "
                           "csl.encoders.saved.FeatureExtractor")
    if getattr(model, "image_shape", None) is None and info.signature is not None:  # registered before it existed
        shape = info.signature.inputs.inputs[0].shape
        model.image_shape = tuple(int(s) for s in shape[1:])
    return model.eval(), EncoderSource(uri, version_uri, sha)


def load_encoder_with_source(uri: str | Path) -> tuple[FeatureExtractor, EncoderSource]:
    text = str(uri)
    if is_model_uri(text):
        return _from_registry(text)
    path = Path(text)
    if path.exists() or text.endswith(".pt"):
        from csl.tracking.model_registry import file_sha256

        extractor = load_feature_extractor(path)
        return extractor, EncoderSource(text, "", file_sha256(path))
    if "/" not in text or "@" in text:  # NAME, NAME@ALIAS: a registry name
        return _from_registry(f"models:/{text}")
    raise CslError(f"{text} is neither a file nor a model URI; give an encoder.pt path or models:/NAME@ALIAS")


def load_encoder(uri: str | Path) -> Any:
    """The :class:`~csl.encoders.saved.FeatureExtractor` of ``uri`` (see module doc), in eval mode on
    the CPU: ``enc.embed(images)`` -> ``(N, D)`` numpy embeddings, ``enc.image_shape`` its input."""
    return load_encoder_with_source(uri)[0]
