"""LegacyDSNet: this package's first DSNet (before the authors' code was followed); kept for checkpoints trained with it."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import geometry
from .config import ConfiguredNet
from .layers import ConvBlock, check_image, conv_stack, normalize_image, pad_to_multiple, scaled_size, upsample_nearest2x
from .legacy_pyramid_encoder import LegacyPyramidEncoder


class LegacyDSNet(ConfiguredNet):
    """Depth + semantic network: PyDNet-style pyramid encoder and a coarse-to-fine decoder.

    Decoder, from level 5 (1/32) to level 1 (1/2):

    * the coarser level's 16-channel estimate is upsampled (nearest ×2, then a
      3×3 conv to 16 channels) and concatenated with this level's encoder features;
    * an estimator (3×3 convs 64-48-32-16, BatchNorm + ReLU) turns them into a
      16-channel estimate;
    * a disparity head (64-32-16-1) predicts a residual that is added to the
      upsampled coarser disparity, then squashed by a sigmoid. The paper is
      silent on where the residual lives; adding it before the sigmoid (to the
      coarser level's pre-sigmoid value) keeps every disparity in [0, 1] while
      still refining the coarser one, so that is what is done here.
    * a semantic head (64-32-16-``num_classes``) on the finest estimate gives
      Cityscapes train-class logits, bilinearly upsampled to the input size.

    Inputs of any size H, W ≥ 64 are accepted: they are replicate-padded
    bottom/right to a multiple of 32 and every output is cropped back.
    ≈ 1.94 M parameters.
    """

    num_levels = 5
    estimate_channels = 16

    @staticmethod
    def depth_from_disp(disp: torch.Tensor) -> torch.Tensor:
        """Disparity of this network (sigmoid, [0, 1]) → depth, monodepth2's 0.1–100 mapping (relative units)."""
        return geometry.disp_to_depth(disp)

    def __init__(self, num_classes: int = 19, encoder_channels: tuple[int, ...] = (16, 32, 64, 128, 256)):
        super().__init__(num_classes=int(num_classes), encoder_channels=[int(c) for c in encoder_channels])
        self.num_classes = num_classes
        self.encoder = LegacyPyramidEncoder(encoder_channels)
        est = self.estimate_channels
        self.estimators = nn.ModuleList()
        self.upconvs = nn.ModuleList()
        self.disp_heads = nn.ModuleList()
        # Index i ↔ level i+1 (0 = finest, 1/2 resolution); upconvs[i] lifts the estimate
        # of index i to the resolution of index i−1 (the finest has nothing to lift to).
        for i, feat_ch in enumerate(encoder_channels):
            coarsest = i == self.num_levels - 1
            cin = feat_ch if coarsest else feat_ch + est
            self.estimators.append(conv_stack([cin, 64, 48, 32, est]))
            self.disp_heads.append(conv_stack([est, 64, 32, 16, 1], last_activation=False))
            self.upconvs.append(nn.Identity() if i == 0 else ConvBlock(est, est))
        self.semantic_head = conv_stack([est, 64, 32, 16, num_classes], last_activation=False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``image`` B×3×H×W RGB in [0, 1] → dict:

        * ``"disp"``: list of 5 B×1×h×w disparities in [0, 1], index 0 the finest
          (1/2 resolution, ceil(H/2)×ceil(W/2)) … index 4 the coarsest (1/32);
        * ``"disp_full"``: B×1×H×W, the finest disparity bilinearly upsampled;
        * ``"semantic"``: B×num_classes×H×W logits.

        Depth = ``geometry.disp_to_depth(disp)`` (relative units). Outputs are
        float32 also under bf16 autocast (sigmoid and upsampling run in float32).
        """
        check_image(image)
        h, w = image.shape[-2:]
        features = self.encoder(normalize_image(pad_to_multiple(image, 32)))

        # Pre-sigmoid disparities, collected coarsest first.
        x = self.estimators[-1](features[-1])
        logit = self.disp_heads[-1](x)
        logits = [logit]
        for i in range(self.num_levels - 2, -1, -1):
            up = self.upconvs[i + 1](upsample_nearest2x(x))
            x = self.estimators[i](torch.cat([features[i], up], dim=1))
            logit = self.disp_heads[i](x) + upsample_nearest2x(logit)
            logits.append(logit)
        logits.reverse()

        disps = []
        for i, logit in enumerate(logits):
            lh, lw = scaled_size(h, w, 2 ** (i + 1))
            disps.append(torch.sigmoid(logit[:, :, :lh, :lw].float()))
        finest = torch.sigmoid(logits[0].float())
        disp_full = F.interpolate(finest, scale_factor=2.0, mode="bilinear", align_corners=False)[:, :, :h, :w]
        semantic = self.semantic_head(x).float()
        semantic = F.interpolate(semantic, scale_factor=2.0, mode="bilinear", align_corners=False)[:, :, :h, :w]
        return {"disp": disps, "disp_full": disp_full, "semantic": semantic}
