"""Embeddings for users of a trained encoder: :func:`load_encoder` (a registered model URI or an
``encoder.pt`` -> a :class:`~csl.encoders.saved.FeatureExtractor` with its preprocessing) and
:func:`~csl.embed.run.embed` (``csl embed``: a folder, zip or shards of images -> embeddings with
their image paths, resumable)."""

from csl.embed.load import load_encoder

__all__ = ["load_encoder"]
