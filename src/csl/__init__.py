"""csl: contrastive self-supervised learning as a composition of five parts.

Falcon & Cho (2020, arXiv 2009.00104) frame every contrastive method as a choice of
(1) augmentation pipeline, (2) encoder, (3) representation extraction, (4) similarity
measure and (5) loss. csl has one package per part (:mod:`csl.augment`,
:mod:`csl.encoders`, :mod:`csl.extract`, :mod:`csl.similarity`, :mod:`csl.losses`) and
methods (:mod:`csl.methods`) that only compose them.
"""

__version__ = "0.1.0"


def load_encoder(uri: str) -> object:
    """``csl.load_encoder("models:/NAME@champion" | "runs:/..." | "path/encoder.pt")``: the encoder's
    feature extractor with its preprocessing (:mod:`csl.embed.load`)."""
    from csl.embed.load import load_encoder as _load

    return _load(uri)
