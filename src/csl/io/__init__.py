"""Atomic file and directory output: a failure never leaves a half-written result."""

from csl.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["atomic_dir", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
