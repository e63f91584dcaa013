"""Whether bf16 autocast pays on a device: ``precision: auto`` in training and the bf16 autocast of
feature extraction, the probes and distillation ask here.

bf16 pays on a GPU that supports it and on a CPU with native bf16 instructions (AVX-512 BF16 or
AMX), where oneDNN runs its bf16 kernels. On any other CPU (AVX2-only x86 such as many cloud AMD
EPYCs, or an ARM CPU without them) bf16 is emulated and far slower than fp32: one forward and
backward of csl's small CNN on a CIFAR batch of 256 took 1.50 s in bf16 and 0.14 s in fp32 on a
2-core AVX2 AMD EPYC (2026-12-06; ``benchmarks/pretrain_throughput.py`` measures it on yours), so
there csl computes in fp32. ``CSL_CPU_BF16=1`` (or ``0``) overrides the detection on a CPU.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

ENV = "CSL_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """True where the CPU executes bf16 natively (AVX-512 BF16 or AMX tiles), or ``CSL_CPU_BF16=1``."""
    forced = os.environ.get(ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        from csl.errors import ConfigError

        raise ConfigError(f"{ENV}={forced!r}: set it to 1 (bf16 autocast on the CPU) or 0 (fp32), or unset it")
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def bf16_pays(device: str | torch.device) -> bool:
    """Whether bf16 autocast is the fast choice on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return cpu_has_native_bf16()
    return False


def on_gpu(accelerator: str) -> bool:
    """Whether ``train.accelerator`` puts training on a GPU here."""
    return accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str) -> str:
    """``train.precision`` as Lightning takes it: ``auto`` is bf16-mixed on a GPU with bf16 (else
    16-mixed) and on a CPU with native bf16, 32-true on other CPUs; any other value is kept."""
    if precision != "auto":
        return precision
    if on_gpu(accelerator):
        return "bf16-mixed" if bf16_pays("cuda") else "16-mixed"
    return "bf16-mixed" if bf16_pays("cpu") else "32-true"


def autocast(device: str | torch.device) -> Any:
    """bf16 autocast on ``device`` where it pays, else a no-op context (fp32)."""
    if not bf16_pays(device):
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
