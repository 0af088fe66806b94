"""LegacyCamNet: this package's first CamNet (before the authors' code was followed); kept for checkpoints trained with it."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfiguredNet
from .layers import encode_triplet, normalize_image
from .legacy_pyramid_encoder import LegacyPyramidEncoder


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


class LegacyCamNet(ConfiguredNet):
    """Pose + intrinsics network.

    * One PyDNet-style :class:`LegacyPyramidEncoder` (weights shared by the three
      frames, which run through it as one batch).
    * Pose: the 1/16 features (level 4, 128 channels) of the three frames are
      concatenated (384 channels) and go through 3×3 convs 128, 128 (stride 2),
      256, 256 (stride 2), each followed by an activation (below), then a 1×1 conv to 12; the
      spatial mean × 0.01 gives two pose vectors (tx, ty, tz, rx, ry, rz), the
      camera motions prev→cur and cur→next (see ``geometry``: the pose of the
      later camera in the earlier one; translation in the network's relative
      units, axis-angle in radians). The paper does not name normalisation or
      padding for these convs: like monodepth2's pose decoder they have no
      BatchNorm and use zero padding (the maps are down to 1×1 at 64×64 input,
      too small for reflection padding). Their activation is a LeakyReLU with
      ``pose_negative_slope`` (0: monodepth2's ReLU, the default). With ReLUs
      and no pretrained encoder up to 93 % of the first layers' units died
      within 500 steps; a slope of 0.1 (the reference checkpoint's) keeps every
      unit alive, but the head still learnt little more than the mean motion,
      and depth learnt more slowly in short runs (see the model card).
    * Intrinsics: the 1/32 features (level 5) of the three frames, globally
      average-pooled and concatenated (768 values), a 1×1 conv to 4 values
      (a_fx, a_fy, a_cx, a_cy): fx, fy = softplus(a)·(W, H) and
      cx, cy = (a + 0.5)·(W, H) in pixels of the input (Gordon et al. 2019).
      Where the pooled features come from is not stated in the paper; level 5 is
      the most global and otherwise unused here.

    Any H, W ≥ 64 (no padding needed: the outputs are spatial means).
    ≈ 2.66 M parameters.
    """

    pose_level = 3        # index into the encoder's features: 1/16
    intrinsics_level = 4  # 1/32

    def __init__(self, encoder_channels: tuple[int, ...] = (16, 32, 64, 128, 256), pose_negative_slope: float = 0.0):
        super().__init__(encoder_channels=[int(c) for c in encoder_channels],
                         pose_negative_slope=float(pose_negative_slope))
        self.pose_negative_slope = float(pose_negative_slope)
        self.encoder = LegacyPyramidEncoder(encoder_channels)
        cin = 3 * encoder_channels[self.pose_level]
        self.pose_convs = nn.Sequential(
            nn.Conv2d(cin, 128, 3, padding=1), nn.LeakyReLU(pose_negative_slope, inplace=True),
            nn.Conv2d(128, 128, 3, stride=2, padding=1), nn.LeakyReLU(pose_negative_slope, inplace=True),
            nn.Conv2d(128, 256, 3, padding=1), nn.LeakyReLU(pose_negative_slope, inplace=True),
            nn.Conv2d(256, 256, 3, stride=2, padding=1), nn.LeakyReLU(pose_negative_slope, inplace=True),
            nn.Conv2d(256, 12, 1),
        )
        self.intrinsics_head = nn.Conv2d(3 * encoder_channels[self.intrinsics_level], 4, 1)
        # Start near a plausible camera, KITTI-like at 640×192 (fx ≈ 0.58·W, fy ≈ 1.92·H,
        # principal point at the centre), so the untrained network already gives usable rigid flow.
        nn.init.normal_(self.intrinsics_head.weight, std=1e-3)
        with torch.no_grad():
            self.intrinsics_head.bias.copy_(torch.tensor([_inverse_softplus(0.58), _inverse_softplus(1.92), 0.0, 0.0]))

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """B×3×H×W RGB in [0, 1] → the encoder's 5 feature maps (cacheable per frame)."""
        return self.encoder(normalize_image(image))

    def decode(self, prev: list[torch.Tensor], cur: list[torch.Tensor], next: list[torch.Tensor],
               height: int, width: int) -> dict[str, torch.Tensor]:
        """Pose and intrinsics from the encoder features of the three frames (see :meth:`encode`)."""
        pose_in = torch.cat([prev[self.pose_level], cur[self.pose_level], next[self.pose_level]], dim=1)
        motion = 0.01 * self.pose_convs(pose_in).mean(dim=(2, 3))
        motion = motion.reshape(-1, 2, 6).float()

        pooled = torch.cat([f[self.intrinsics_level].mean(dim=(2, 3), keepdim=True) for f in (prev, cur, next)], dim=1)
        a = self.intrinsics_head(pooled).flatten(1).float()
        fx = F.softplus(a[:, 0]) * width
        fy = F.softplus(a[:, 1]) * height
        cx = (a[:, 2] + 0.5) * width
        cy = (a[:, 3] + 0.5) * height
        zero = torch.zeros_like(fx)
        one = torch.ones_like(fx)
        K = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], dim=1).reshape(-1, 3, 3)
        return {"motion": motion, "K": K}

    def forward(self, prev: torch.Tensor, cur: torch.Tensor, next: torch.Tensor) -> dict[str, torch.Tensor]:
        """Three B×3×H×W RGB frames in [0, 1] (t−1, t, t+1) → dict:

        * ``"motion"``: B×2×6 pose vectors, [:, 0] camera motion t−1→t, [:, 1] t→t+1;
        * ``"K"``: B×3×3 intrinsics in pixels of the H×W input.
        """
        fp, fc, fn = encode_triplet(self.encode, prev, cur, next)
        return self.decode(fp, fc, fn, cur.shape[-2], cur.shape[-1])
