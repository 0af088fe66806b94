"""monodepth2's pose network (Godard et al., ICCV 2019), as used by Moreau et al.: a separate ResNet18 on two
stacked frames and monodepth2's pose decoder, no attention.

Parameter names match monodepth2's ``pose_encoder.pth`` (``encoder.conv1.weight`` …, torchvision layout, 6
input channels) and ``pose.pth`` (``net.0`` squeeze, ``net.1``/``net.2`` 3×3 convs, ``net.3`` the 1×1 output
conv for ``num_frames_to_predict_for`` frames; monodepth2's default 2, of which frame 0 is used).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .. import geometry
from .config import ConfiguredNet
from .layers import check_image, normalize_image
from .monodepth2_resnet18 import ResNet18Encoder

POSE_SCALE = 0.01  # monodepth2 scales the decoder's output so the initial motions are small


class Monodepth2PoseNet(ConfiguredNet):
    """``forward(a, b)``: two B×3×H×W RGB frames in [0, 1] → B×4×4 camera motion a → b (pose of camera b in
    camera a's frame, ``geometry`` convention; translation in the depth network's relative units)."""

    def __init__(self, num_frames_to_predict_for: int = 2):
        super().__init__(num_frames_to_predict_for=int(num_frames_to_predict_for))
        self.num_frames_to_predict_for = int(num_frames_to_predict_for)
        self.encoder = ResNet18Encoder(in_channels=6)
        self.net = nn.ModuleList([
            nn.Conv2d(ResNet18Encoder.num_ch_enc[-1], 256, 1),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.Conv2d(256, 6 * self.num_frames_to_predict_for, 1),
        ])
        self.relu = nn.ReLU()

    def pose_vector(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """B×6 (translation, axis-angle) of the motion a → b."""
        check_image(a, "first frame")
        check_image(b, "second frame")
        x = self.encoder(normalize_image(torch.cat([a, b], dim=1)))[-1]
        for k, conv in enumerate(self.net):
            x = conv(x)
            if k < len(self.net) - 1:
                x = self.relu(x)
        out = POSE_SCALE * x.mean((2, 3)).view(-1, self.num_frames_to_predict_for, 6)[:, 0]
        axis_angle, translation = out[:, :3], out[:, 3:]  # monodepth2's order
        return torch.cat([translation, axis_angle], dim=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return geometry.pose_vec_to_mat(self.pose_vector(a, b))
