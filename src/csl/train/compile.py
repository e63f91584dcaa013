"""``train.compile``: ``torch.compile`` (TorchInductor) of the networks a training step runs.

Compiled in place (``nn.Module.compile``): parameter names, state dicts and checkpoints are the
same as without it, so a run may be resumed with the option switched either way, and the EMA
targets' updates and the registry see the same modules. The augmentation (it draws from a
``torch.Generator``) and the loss stay eager. Measured in ``benchmarks/throughput.py``: it pays
for its compile time (10-40 s at the first step here) only on runs of more than a few minutes.
"""

from __future__ import annotations

from torch import nn

NETWORKS = ("encoder", "projector", "head", "predictor", "target_encoder", "target_projector")


def compile_networks(method: nn.Module) -> list[str]:
    """Compile the method's networks that exist among :data:`NETWORKS`; returns their names."""
    names = []
    for name in NETWORKS:
        module = getattr(method, name, None)
        if isinstance(module, nn.Module):
            module.compile()
            names.append(name)
    return names
