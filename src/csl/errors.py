"""The errors csl raises for bad input: each names the problem and the fix."""


class CslError(Exception):
    """Base class: a user-facing error. The CLI prints it and exits with status 2."""


class ConfigError(CslError):
    """A parameter is unknown, of the wrong type, or inconsistent."""


class UnknownNameError(ConfigError):
    """A method or component name is not registered."""

    def __init__(self, kind: str, name: object, valid: list[str], where: str = "") -> None:
        loc = f" at '{where}'" if where else ""
        super().__init__(
            f"unknown {kind} {name!r}{loc}; valid names: {', '.join(sorted(valid))}"
        )


class DataError(CslError):
    """A dataset is missing, corrupt or truncated."""


class NonFiniteLossError(CslError):
    """Training produced a NaN or infinite loss."""


class CollapseError(CslError):
    """The online health check found the embeddings collapsed (:mod:`csl.train.health`)."""


class TrackingError(CslError):
    """The MLflow tracking server cannot be reached or refused a request."""


class StorageError(CslError):
    """Object storage (S3) cannot be reached, refused a request, or lacks a bucket."""


class JobFailedError(CslError):
    """A cluster job (PyTorchJob) ended in failure; the message carries the operator's reason."""
