"""Depth-only yardstick: ResNet18 encoder + monodepth2 depth decoder (Godard et al., ICCV 2019).

Used by the benchmarks to compare ΩNet's cost with the usual monodepth2 baseline.
The ResNet18 is written here (no torchvision dependency); weights are random
unless a checkpoint is loaded (no pretrained download is possible offline).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfiguredNet
from .layers import ceil_div, check_image, normalize_image, pad_to_multiple


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convs with BatchNorm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Encoder(nn.Module):
    """ResNet18 features at 1/2, 1/4, 1/8, 1/16, 1/32 (64, 64, 128, 256, 512 channels), as monodepth2.

    Parameter names follow torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1`` …, without
    ``fc``), so ImageNet or monodepth2 encoder weights load. ``in_channels`` 6 is monodepth2's pose encoder
    on two stacked frames (its ImageNet ``conv1`` weights are repeated and halved to load there).
    """

    num_ch_enc = (64, 64, 128, 256, 512)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.in_channels = int(in_channels)
        self.conv1 = nn.Conv2d(self.in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


class ConvELU(nn.Module):
    """monodepth2 ``ConvBlock``: reflection-padded 3×3 conv + ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.pad(x)))


class DepthDecoder(nn.Module):
    """monodepth2 depth decoder: channels 16/32/64/128/256, nearest upsampling, skips, sigmoid disparities at 4 scales."""

    num_ch_dec = (16, 32, 64, 128, 256)

    def __init__(self, num_ch_enc: tuple[int, ...] = ResNet18Encoder.num_ch_enc, scales: tuple[int, ...] = (0, 1, 2, 3)):
        super().__init__()
        self.scales = tuple(scales)
        self.upconv0 = nn.ModuleList()
        self.upconv1 = nn.ModuleList()
        for i in range(4, -1, -1):
            cin = num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
            self.upconv0.append(ConvELU(cin, self.num_ch_dec[i]))
            cin = self.num_ch_dec[i] + (num_ch_enc[i - 1] if i > 0 else 0)
            self.upconv1.append(ConvELU(cin, self.num_ch_dec[i]))
        self.dispconvs = nn.ModuleList(
            [nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(self.num_ch_dec[s], 1, 3)) for s in self.scales])

    def level(self, k: int, x: torch.Tensor, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder level ``k`` (0 … 4, coarsest first; output scale ``i = 4 − k``) from the previous level's ``x``.

        Returns (the upsampled first conv's output, num_ch_dec[i] channels; the level's output after the skip
        and second conv, num_ch_dec[i] channels), both at 1/2^i of the input. MTAN attention reads both.
        """
        i = 4 - k
        first = F.interpolate(self.upconv0[k](x), scale_factor=2.0, mode="nearest")
        x = torch.cat([first, features[i - 1]], dim=1) if i > 0 else first
        return first, self.upconv1[k](x)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encoder features → disparities in [0, 1], finest (full resolution) first."""
        disps = []
        x = features[-1]
        for k, i in enumerate(range(4, -1, -1)):
            _, x = self.level(k, x, features)
            if i in self.scales:
                disps.append(torch.sigmoid(self.dispconvs[self.scales.index(i)](x)))
        return disps[::-1]


class Monodepth2ResNet18(ConfiguredNet):
    """ResNet18 + monodepth2 depth decoder; any H, W ≥ 64 (padded to a multiple of 32, outputs cropped).

    ``forward(image)`` with ``image`` B×3×H×W RGB in [0, 1] → dict with ``"disp"``
    (4 disparities in [0, 1], finest first: H×W, H/2, H/4, H/8) and
    ``"disp_full"`` (B×1×H×W). ≈ 14.3 M parameters.
    """

    def __init__(self):
        super().__init__()
        self.encoder = ResNet18Encoder()
        self.decoder = DepthDecoder()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        check_image(image)
        h, w = image.shape[-2:]
        disps = self.decoder(self.encoder(normalize_image(pad_to_multiple(image, 32))))
        disps = [d[:, :, :ceil_div(h, 2 ** s), :ceil_div(w, 2 ** s)] for s, d in enumerate(disps)]
        return {"disp": disps, "disp_full": disps[0]}
