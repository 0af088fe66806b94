"""LegacyPyramidEncoder: the encoder of LegacyDSNet and LegacyCamNet (BatchNorm with γ, ε = 1e-5, normalised input)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ConvBlock, pyramid_levels, run_pyramid


class LegacyPyramidEncoder(nn.Module):
    """Five levels, each a stride-2 3×3 conv then a stride-1 3×3 conv (BatchNorm, ReLU, reflection padding).

    Input: B×3×H×W already normalised (see ``layers.normalize_image``).
    Output: list of 5 feature maps, level 1 (1/2 resolution, ``channels[0]``)
    to level 5 (1/32, ``channels[4]``); sizes are ceil(H/2^l)×ceil(W/2^l).
    ≈ 1.18 M parameters with the default channels.
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        self.channels = tuple(channels)
        self.levels = pyramid_levels(self.channels, ConvBlock, in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return run_pyramid(self.levels, x)
