"""Moreau et al. (UMONS): ResNet18 shared encoder + monodepth2 depth decoder as the shared decoder, with MTAN
soft-attention modules extracting task-specific features for depth and for instances.

MTAN (Liu, Johns, Davison, CVPR 2019): the shared network is a feature pool; each task ``i`` has, at every
block ``j`` of the shared network, an attention module that learns a soft mask

    a_i^(j) = h_i^(j)( g_i^(j)( [u^(j) ; f^(j)(â_i^(j−1))] ) ),   â_i^(j) = a_i^(j) ⊙ p^(j)

with ``u^(j)`` the shared features of the block's first layer, ``p^(j)`` those of its last layer, ``g``, ``h``
1×1 conv + BatchNorm (ReLU, then sigmoid), and ``f^(j)`` a 3×3 conv block shared by the tasks, followed by
pooling (encoder side) or upsampling (decoder side) to the next block's resolution. Here the encoder blocks
are ResNet18's stem and ``layer1`` … ``layer4`` (``u`` = first BasicBlock's output, ``p`` = the layer's
output; the stem has no first layer: ``u = p``) and the decoder blocks are the five monodepth2 decoder
levels (``u`` = the upsampled first conv, ``p`` = the level's output after the skip). The decoder-side
chain starts from the task's last encoder-side features, as in MTAN's SegNet.

Heads: depth uses the decoder's own disparity convolutions on the depth features (sigmoid disparities at
4 scales, monodepth2's 0.1–100 mapping, then divided by its image mean: see :meth:`MoreauNet.depth_from_disp`);
instances use a 3×3 convolution on the full-resolution
instance features giving three channels: the offset (x, y) from each pixel to its instance's centroid, in
fractions of the image width and height, and a "thing" logit (the pixel belongs to an instance of a thing
class). The poster does not say how thing pixels are found at inference; the logit is this package's
choice (README, "Moreau model").
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import geometry
from .config import ConfiguredNet
from .layers import check_image, normalize_image, pad_to_multiple
from .monodepth2_resnet18 import DepthDecoder, ResNet18Encoder

TASKS = ("depth", "instance")
INSTANCE_CHANNELS = 3  # offset x, offset y, thing logit
MIN_DEPTH, MAX_DEPTH = 0.1, 100.0  # monodepth2's disparity → depth range (relative units)
# How a sigmoid disparity becomes depth: "mean" = monodepth2's mapping divided by its image mean (the default;
# Wang et al. CVPR 2018's depth normalisation, as ΩNet's DSNet), "none" = monodepth2's mapping as it is.
DEPTH_NORMALIZATIONS = ("mean", "none")


class AttentionModule(nn.Module):
    """MTAN soft attention: mask = σ(BN(h(ReLU(BN(g(x)))))) from x = [u; previous], returns mask ⊙ p."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.g = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.h = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Sigmoid())

    def forward(self, u: torch.Tensor, p: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        x = u if previous is None else torch.cat([u, previous], dim=1)
        return self.h(self.g(x)) * p


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """MTAN's shared ``f``: 3×3 conv + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


class MoreauNet(ConfiguredNet):
    """Shared ResNet18 + monodepth2 decoder with MTAN attention per task (``tasks``: "depth" and optionally "instance").

    ``forward(image)`` with ``image`` B×3×H×W RGB in [0, 1] (any H, W ≥ 64; padded to a multiple of 32 inside)
    → dict with ``"disp"`` (4 sigmoid disparities, finest first: H×W, H/2, H/4, H/8), ``"disp_full"``
    (B×1×H×W) and, with the instance task, ``"instance_offset"`` (B×2×H×W, centroid − pixel in fractions of
    W and H) and ``"thing_logit"`` (B×1×H×W). Depth: :meth:`depth_from_disp` (``depth_normalization``).
    """

    # Checkpoints written before depth_normalization existed were trained with monodepth2's plain mapping.
    defaults_of_older_records = {"depth_normalization": "none"}

    def __init__(self, tasks: tuple[str, ...] | list[str] = TASKS, depth_normalization: str = "mean"):
        tasks = tuple(tasks)
        super().__init__(tasks=list(tasks), depth_normalization=str(depth_normalization))
        if "depth" not in tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
            raise ValueError(f"MoreauNet tasks must include 'depth' and be among {TASKS}, got {list(tasks)}")
        if depth_normalization not in DEPTH_NORMALIZATIONS:
            raise ValueError(f"MoreauNet depth_normalization must be one of {DEPTH_NORMALIZATIONS}, "
                             f"got {depth_normalization!r}")
        self.tasks = list(tasks)
        self.depth_normalization = depth_normalization
        self.encoder = ResNet18Encoder()
        self.decoder = DepthDecoder()
        enc, dec = ResNet18Encoder.num_ch_enc, DepthDecoder.num_ch_dec
        # Shared f of the encoder side: block j → block j+1's channels (then pooled to its resolution).
        self.encoder_f = nn.ModuleList([conv_block(enc[j], enc[j + 1]) for j in range(4)])
        # Shared f of the decoder side: the previous level (the last encoder block for the first) → this level.
        self.decoder_f = nn.ModuleList([conv_block(enc[4] if k == 0 else dec[5 - k], dec[4 - k]) for k in range(5)])
        self.encoder_attention = nn.ModuleDict({
            t: nn.ModuleList([AttentionModule(enc[j] * (1 if j == 0 else 2), enc[j]) for j in range(5)]) for t in tasks})
        self.decoder_attention = nn.ModuleDict({
            t: nn.ModuleList([AttentionModule(2 * dec[4 - k], dec[4 - k]) for k in range(5)]) for t in tasks})
        if "instance" in tasks:
            self.instance_head = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dec[0], INSTANCE_CHANNELS, 3))
            nn.init.zeros_(self.instance_head[1].weight)  # start at offset 0 and thing probability ½
            nn.init.zeros_(self.instance_head[1].bias)

    def depth_from_disp(self, disp: torch.Tensor) -> torch.Tensor:
        """Sigmoid disparity B×1×H×W → depth B×1×H×W in relative units.

        monodepth2's mapping (depth in [0.1, 100]); with ``depth_normalization="mean"`` its inverse (the scaled
        disparity) is then divided by its mean over each image, so the depth's mean inverse is 1 and the nearest
        and farthest depths still differ by at most 1000×. Why: self-supervision fixes depth × translation only
        up to a scale, and without the normalisation the pose network's translation shrank while the depths
        followed it down to the 0.1 floor, the sigmoids saturated at 1 and the depth branch stopped learning
        (issue 17: every trained run collapsed to a constant-depth plane). With it, the scale lives in the
        pose's translation alone, as with ΩNet's DSNet.
        """
        depth = geometry.disp_to_depth(disp, MIN_DEPTH, MAX_DEPTH)
        if self.depth_normalization == "mean":
            depth = depth * (1.0 / depth).mean((-2, -1), keepdim=True)
        return depth

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Shared features of the five blocks and each task's last attended encoder features."""
        e = self.encoder
        stem = e.relu(e.bn1(e.conv1(x)))
        shared = [stem]
        firsts = [stem]
        h = e.maxpool(stem)
        for layer in (e.layer1, e.layer2, e.layer3, e.layer4):
            first = layer[0](h)
            h = layer[1](first)
            firsts.append(first)
            shared.append(h)
        attended = {}
        for task in self.tasks:
            a = None
            for j in range(5):
                previous = None
                if j > 0:
                    previous = F.max_pool2d(self.encoder_f[j - 1](a), 2, 2) if j > 1 else \
                        e.maxpool(self.encoder_f[0](a))  # stem → layer1: the ResNet's own 3×3/2 pooling
                a = self.encoder_attention[task][j](firsts[j], shared[j], previous)
            attended[task] = a
        return shared, attended

    def forward(self, image: torch.Tensor) -> dict:
        check_image(image)
        h, w = image.shape[-2:]
        shared, attended = self._encode(normalize_image(pad_to_multiple(image, 32)))
        x = shared[-1]
        task_features = dict(attended)
        disps = []
        instance = None
        for k in range(5):
            i = 4 - k
            first, x = self.decoder.level(k, x, shared)
            for task in self.tasks:
                previous = F.interpolate(self.decoder_f[k](task_features[task]), size=first.shape[-2:], mode="nearest")
                task_features[task] = self.decoder_attention[task][k](first, x, previous)
            if i in self.decoder.scales:
                disps.append(torch.sigmoid(self.decoder.dispconvs[self.decoder.scales.index(i)](task_features["depth"])))
        disps = [d[:, :, :-(-h // 2 ** s), :-(-w // 2 ** s)] for s, d in enumerate(disps[::-1])]
        out = {"disp": disps, "disp_full": disps[0]}
        if "instance" in self.tasks:
            instance = self.instance_head(task_features["instance"])[:, :, :h, :w]
            out["instance_offset"] = instance[:, :2]
            out["thing_logit"] = instance[:, 2:]
        return out
