"""The CInC normalizing flow, with Glow and Emerging baselines.

`CInCConv2d` is the invertible k x k convolution of "CInC Flow: Characterizable
Invertible 3x3 Convolution"; `FlowModel` is the multi-scale flow built from it or
from the baselines' layers.
"""

from models.flow.convs import (
    AutoregressiveConv2d,
    CInCConv2d,
    EmergingConv2d,
    InvalidFlowShape,
)
from models.flow.model import FlowConfig, FlowModel, bits_per_dim

__all__ = [
    "AutoregressiveConv2d",
    "CInCConv2d",
    "EmergingConv2d",
    "FlowConfig",
    "FlowModel",
    "InvalidFlowShape",
    "bits_per_dim",
]
