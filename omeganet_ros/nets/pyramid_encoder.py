"""PyramidEncoder: the authors' ``build_pyramid``, the encoder of DSNet and CamNet (ΩNet, CVPR 2020)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ConvBNReLU, pyramid_levels, run_pyramid


class PyramidEncoder(nn.Module):
    """Five levels, each a stride-2 then a stride-1 :class:`~.layers.ConvBNReLU` (16·{1, 2, 4, 8, 16} channels).

    Input: B×3×H×W RGB in [0, 1], not normalised (the authors feed it as is).
    Output: list of 5 feature maps, index 0 = 1/2 resolution (16 channels) … index 4 = 1/32
    (256 channels); a level of h rows has floor((h − 1) / 2) + 1 rows below it.
    The authors' list also starts with the image itself; here index l−1 is their index l.
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        self.channels = tuple(channels)
        self.levels = pyramid_levels(self.channels, ConvBNReLU, in_channels)

    def forward(self, x: torch.Tensor, num_levels: int | None = None) -> list[torch.Tensor]:
        """Feature maps of the first ``num_levels`` levels (default: all)."""
        return run_pyramid(self.levels, x, num_levels)
