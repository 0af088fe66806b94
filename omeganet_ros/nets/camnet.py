"""CamNet: camera motion and intrinsics from three frames, the authors' CameraNet (ΩNet, CVPR 2020)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import geometry
from .config import ConfiguredNet
from .layers import ConvBNReLU, ReflectConv, encode_triplet
from .pyramid_encoder import PyramidEncoder

POSE_SCALING = 0.01


class CamNet(ConfiguredNet):
    """Pose + intrinsics network, exactly the authors' ``CameraNet`` (their TF code is the specification).

    * Its own :class:`PyramidEncoder` (the authors' ``feature_extractor_pose``), shared by the
      three frames, on RGB in [0, 1].
    * Pose: the 1/16 features (128 channels) of t−1, t, t+1 concatenated (384), then
      ConvBNReLU 128 (stride 1), 128 (stride 2), 256 (1), 256 (2) — ``conv1_a`` … ``conv2_b`` —
      then ``pred``: reflection pad 1 and a 1×1 conv to 12 with bias; its spatial mean (over the
      padded map, as theirs) × 0.01 gives the authors' two pose vectors t→t−1 and t→t+1
      (SfMLearner: Euler angles, a transform from the target camera into the source camera).
    * Intrinsics from the spatial mean of ``conv2_b``: ``foci`` 1×1 conv with bias, softplus,
      × (W, H); ``offsets`` 1×1 conv without bias, + 0.5, × (W, H).

    Any H, W ≥ 64 (below 128 the 1×1 map before ``pred`` is replicate-padded, see
    :func:`~.layers.reflect_pad`). ≈ 2.66 M parameters.

    ``reversal_symmetric`` (our choice, not the authors'; default off, the authors' network): the pose head
    also reads the reversed triplet (t+1, t, t−1), whose two pose vectors are the same transforms in the other
    order (both of the authors' poses map the target t into a source), and the two answers are averaged:
    ``pose = ½ (head(p, c, n) + swap(head(n, c, p)))``, ``K`` the mean of both. Reversing the input then swaps
    the poses exactly, and a head that reads one frame's appearance can only give t→t−1 = t→t+1, which real
    motion (t→t−1 ≈ the inverse of t→t+1) contradicts: the motion has to come from the frames' differences.
    The weights are unchanged (the same head runs on both orders, one batched pass; the encoder runs once per
    frame). Measured on the synthetic world (issue 13): see the README and the model card.

    ``still_subtracted`` (our choice, default off): the head's answer on the still triplet (t, t, t) is subtracted
    (symmetrised too when ``reversal_symmetric``), so the still triplet gives exactly zero motion and any part of
    the answer that depends on frame t's appearance alone cancels. One more head pass, batched.
    """

    pose_level = 3  # encoder index of the 1/16 features (the authors' index 4)

    def __init__(self, encoder_channels: tuple[int, ...] = (16, 32, 64, 128, 256), reversal_symmetric: bool = False,
                 still_subtracted: bool = False):
        super().__init__(encoder_channels=[int(c) for c in encoder_channels], reversal_symmetric=bool(reversal_symmetric),
                         still_subtracted=bool(still_subtracted))
        self.encoder_channels = tuple(encoder_channels)
        self.reversal_symmetric = bool(reversal_symmetric)
        self.still_subtracted = bool(still_subtracted)
        self.encoder = PyramidEncoder(encoder_channels)
        self.pose_convs = nn.Sequential(
            ConvBNReLU(3 * encoder_channels[self.pose_level], 128), ConvBNReLU(128, 128, stride=2),
            ConvBNReLU(128, 256), ConvBNReLU(256, 256, stride=2))
        self.pose_pred = ReflectConv(256, 12, 1)
        self.foci = nn.Conv2d(256, 2, 1)
        self.offsets = nn.Conv2d(256, 2, 1, bias=False)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """B×3×H×W RGB in [0, 1] → the encoder's feature maps up to 1/16 (cacheable per frame).

        The authors' graph also builds the 1/32 level (``conv5a``/``conv5b``) but never uses it:
        its weights are kept (they are in the release) and not computed.
        """
        return self.encoder(image, num_levels=self.pose_level + 1)

    def decode(self, prev: list[torch.Tensor], cur: list[torch.Tensor], next: list[torch.Tensor],
               height: int, width: int) -> dict[str, torch.Tensor]:
        """Pose and intrinsics from the encoder features of the three frames (see :meth:`encode`).

        Returns (float32) ``"motion"`` B×2×6 in this package's convention (``geometry``: axis-angle
        camera motions t−1→t and t→t+1), ``"K"`` B×3×3 in pixels of H×W, and the authors' raw
        outputs ``"pose"`` B×2×6 (t→t−1, t→t+1, Euler) and ``"intrinsics"`` (= ``"K"``).
        """
        level = self.pose_level
        batch = prev[level].shape[0]
        orders = [(prev, cur, next)]
        if self.reversal_symmetric:  # the reversed triplet (t+1, t, t−1) in the same pass, as more samples
            orders.append((next, cur, prev))
        if self.still_subtracted:
            orders.append((cur, cur, cur))
        stacked = torch.cat([torch.cat([a[level], b[level], c[level]], dim=1) for a, b, c in orders])
        bottleneck = self.pose_convs(stacked)
        poses = (POSE_SCALING * self.pose_pred(bottleneck).float().mean(dim=(2, 3)).reshape(-1, 2, 6)).split(batch)
        pose = poses[0]
        if self.reversal_symmetric:
            # the reversed triplet's pose 0 is t→t+1 and its pose 1 is t→t−1: swapped, they estimate ours
            pose = 0.5 * (pose + poses[1].flip(1))
        if self.still_subtracted:
            still = poses[-1]
            pose = pose - (0.5 * (still + still.flip(1)) if self.reversal_symmetric else still)
        bottleneck = bottleneck[:batch * (2 if self.reversal_symmetric else 1)]
        # The authors' pose 0 maps t into t−1: our camera motion t−1→t; pose 1 maps t into t+1: the
        # inverse of our t→t+1.
        transforms = geometry.euler_pose_vec_to_mat(pose)
        motions = torch.stack([transforms[:, 0], geometry.invert_rigid(transforms[:, 1])], dim=1)

        pooled = bottleneck.float().mean(dim=(2, 3), keepdim=True)
        size = torch.tensor([width, height], dtype=torch.float32, device=pooled.device)
        foci = F.softplus(self.foci(pooled).flatten(1).float()) * size
        offsets = (self.offsets(pooled).flatten(1).float() + 0.5) * size
        zero = torch.zeros_like(foci[:, 0])
        one = torch.ones_like(zero)
        K = torch.stack([foci[:, 0], zero, offsets[:, 0], zero, foci[:, 1], offsets[:, 1], zero, zero, one],
                        dim=1).reshape(-1, 3, 3)
        if self.reversal_symmetric:
            K = 0.5 * (K[:batch] + K[batch:])
        return {"motion": geometry.mat_to_pose_vec(motions), "K": K, "pose": pose, "intrinsics": K}

    def forward(self, prev: torch.Tensor, cur: torch.Tensor, next: torch.Tensor) -> dict[str, torch.Tensor]:
        """Three B×3×H×W RGB frames in [0, 1] (t−1, t, t+1) → the dict of :meth:`decode`."""
        fp, fc, fn = encode_triplet(self.encode, prev, cur, next)
        return self.decode(fp, fc, fn, cur.shape[-2], cur.shape[-1])
