"""DSNet: depth and semantics from one image, the authors' network (ΩNet, CVPR 2020; their ``network_components.DSNet``)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import (ConvBNReLU, ReflectConv, ceil_div, check_image, pad_to_multiple, resize_bilinear_tf_legacy,
                     upsample_nearest2x)
from .config import ConfiguredNet
from .pyramid_encoder import PyramidEncoder

DISP_SCALING = 10.0
MIN_DISP = 0.01


def spatial_normalize(disp: torch.Tensor) -> torch.Tensor:
    """The authors' ``spatial_normalize``: B×1×h×w disparity divided by its own mean (per image)."""
    return disp / disp.mean(dim=(1, 2, 3), keepdim=True)


def conv_chain(channels: list[int]) -> nn.Sequential:
    """ConvBNReLU blocks through ``channels`` (first entry = input channels)."""
    return nn.Sequential(*[ConvBNReLU(cin, cout) for cin, cout in zip(channels[:-1], channels[1:])])


class DSNetLevel(nn.Module):
    """One decoder level: ``estimator`` (64-48-32-16), disparity head (64-32-16, then a 1-channel conv with
    bias and sigmoid), and, below the finest level, ``upsampler`` (nearest ×2, ConvBNReLU 16→16) feeding the next.
    """

    def __init__(self, in_channels: int, with_upsampler: bool, estimate_channels: int = 16):
        super().__init__()
        self.estimator = conv_chain([in_channels, 64, 48, 32, estimate_channels])
        self.disparity = conv_chain([estimate_channels, 64, 32, 16])
        self.disparity_out = ReflectConv(16, 1, 3)
        self.upsampler = ConvBNReLU(estimate_channels, estimate_channels) if with_upsampler else None

    def disp(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' ``get_disp``: 10·sigmoid(conv) + 0.01 (float32)."""
        return DISP_SCALING * torch.sigmoid(self.disparity_out(self.disparity(x)).float()) + MIN_DISP


class DSNet(ConfiguredNet):
    """Depth + semantic network, exactly the authors' (their TF inference code is the specification).

    * :class:`PyramidEncoder` on the RGB image in [0, 1] (no mean/std normalisation).
    * Decoder from L5 (1/32) to L1 (1/2): the estimator of each level reads the encoder features
      concatenated with the coarser level's up-sampled estimate; a level's disparity is
      10·sigmoid(conv) + 0.01 *plus* the coarser disparity up-sampled ×2 (TF-legacy bilinear).
    * Semantic head on L1's estimate: convs 64-32-16-``num_classes``, every one with BatchNorm
      and ReLU, the last one too (the authors' logits are ≥ 0).
    * Final disparity: L1's divided by its mean (``spatial_normalize``), resized to H×W with
      TF-legacy bilinear; depth = 1 / disparity (relative units, mean inverse depth 1).

    The authors' graph needs H and W divisible by 32; other sizes are replicate-padded
    bottom/right to a multiple of 32 and every output cropped back (the normalising mean then
    includes the padding: an extension, not the authors' behaviour). ≈ 1.94 M parameters.
    """

    num_levels = 5
    estimate_channels = 16

    def __init__(self, num_classes: int = 19, encoder_channels: tuple[int, ...] = (16, 32, 64, 128, 256)):
        super().__init__(num_classes=int(num_classes), encoder_channels=[int(c) for c in encoder_channels])
        self.num_classes = num_classes
        self.encoder_channels = tuple(encoder_channels)
        self.encoder = PyramidEncoder(encoder_channels)
        est = self.estimate_channels
        # levels[i] is the authors' L(i+1); L5 reads the encoder only, the others also the upsampled estimate.
        self.levels = nn.ModuleList(
            [DSNetLevel(c if i == self.num_levels - 1 else c + est, with_upsampler=i > 0)
             for i, c in enumerate(encoder_channels)])
        self.semantic = nn.Sequential(*conv_chain([est, 64, 32, 16]), ConvBNReLU(16, num_classes))

    @staticmethod
    def depth_from_disp(disp: torch.Tensor) -> torch.Tensor:
        """Disparity of this network (normalised, mean 1) → depth in relative units: 1 / disparity."""
        return 1.0 / disp

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``image`` B×3×H×W RGB in [0, 1] → dict (float32):

        * ``"disp_raw"``: list of 5 B×1×h×w disparities as the authors' decoder gives them,
          index 0 the finest (1/2) … 4 the coarsest (1/32);
        * ``"disp"``: the same, each divided by its mean (what depth is computed from);
        * ``"disp_full"``: B×1×H×W, the finest normalised disparity resized to the input size
          (the authors' ``prepare_disp``);
        * ``"semantic_half"``: B×C×H/2×W/2 logits; ``"semantic"``: resized to H×W (``upsample_semantic``).
        """
        check_image(image)
        h, w = image.shape[-2:]
        padded = pad_to_multiple(image, 32)
        features = self.encoder(padded)
        x = None
        disp = None
        raw = []
        for i in range(self.num_levels - 1, -1, -1):
            level = self.levels[i]
            if x is None:
                x = level.estimator(features[i])
                disp = level.disp(x)
            else:
                x = level.estimator(torch.cat([features[i], self.levels[i + 1].upsampler(upsample_nearest2x(x))], 1))
                disp = level.disp(x) + resize_bilinear_tf_legacy(disp, x.shape[-2:])
            raw.append(disp)
        raw.reverse()
        semantic_half = self.semantic(x).float()
        if padded.shape[-2:] != image.shape[-2:]:
            raw = [d[:, :, :ceil_div(h, 2 ** (i + 1)), :ceil_div(w, 2 ** (i + 1))] for i, d in enumerate(raw)]
            semantic_half = semantic_half[:, :, :ceil_div(h, 2), :ceil_div(w, 2)]
        normalized = [spatial_normalize(d) for d in raw]
        return {
            "disp_raw": raw,
            "disp": normalized,
            "disp_full": resize_bilinear_tf_legacy(normalized[0], (h, w)),
            "semantic_half": semantic_half,
            "semantic": resize_bilinear_tf_legacy(semantic_half, (h, w)),
        }
