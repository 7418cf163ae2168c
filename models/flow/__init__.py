"""The CInC normalizing flow, with Glow and Emerging baselines.

`CInCConv2d` is the invertible k x k convolution of "CInC Flow: Characterizable
Invertible 3x3 Convolution"; `FlowModel` is the multi-scale flow built from it or
from the baselines' layers. The names load torch on first use, so the command
line's parser stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AutoregressiveConv2d": "models.flow.convs",
    "CInCConv2d": "models.flow.convs",
    "EmergingConv2d": "models.flow.convs",
    "InvalidFlowShape": "models.flow.convs",
    "FlowConfig": "models.flow.model",
    "FlowModel": "models.flow.model",
    "bits_per_dim": "models.flow.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'models.flow' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
