"""ESPNet (Mehta et al., "ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic
Segmentation", ECCV 2018): ESPNet-C (the encoder) and ESPNet (encoder + light-weight decoder).

Written from the paper (Sec. 3 and Fig. 4); the module attribute names follow the
authors' published state dicts (``sacmehta/ESPNet``, ``pretrained/``) so that
those files load key for key.

* **ESP module** (Sec. 3.1): *reduce* with a point-wise convolution to d = N/K
  channels (K = 5), *split* into K parallel 3×3 dilated convolutions with
  dilation 2^(k−1) = 1, 2, 4, 8, 16, *merge* by hierarchical feature fusion
  (HFF: the branches with dilation ≥ 2 are summed cumulatively before
  concatenation, which removes the gridding artefacts of large dilations), plus
  an identity shortcut when input and output widths agree; BatchNorm + PReLU.
  The strided variant that down-samples (between levels) reduces with a strided
  3×3 convolution and has no shortcut.
* **ESPNet-C** (Fig. 4c): a strided 3×3 conv (level 1, 16 channels), the input
  image average-pooled to each level's resolution and concatenated to its
  features (input reinforcement), a strided ESP module then α2 = p ESP modules
  at 1/4 (64 channels) and α3 = q at 1/8 (128 channels), and a 1×1 classifier
  at 1/8 resolution.
* **ESPNet** (Fig. 4d): the same encoder; its 1/8 class map is up-sampled by a
  2×2 transposed convolution, fused with a projection of the 1/4 features by an
  ESP module, up-sampled again, concatenated with the level-1 features and
  refined by a 3×3 conv, and a last transposed conv gives full-resolution
  logits.

Input: B×3×H×W, the image normalised as the authors trained it (see
``teacher.semantic``: BGR, Cityscapes mean/std, then /255), H and W multiples
of 8. Output: B×C×H×W logits (full ESPNet) or B×C×H/8×W/8 (ESPNet-C); for
the Cityscapes models C = 20 = trainIds 0–18 plus one "void" class.
"""
from __future__ import annotations

import torch
import torch.nn as nn

BN_EPS = 1e-3  # the authors' BatchNorm epsilon (PyTorch's default is 1e-5)
DILATIONS = (1, 2, 4, 8, 16)  # the K = 5 branches of an ESP module, 2^(k−1)


class Conv(nn.Module):
    """A bias-free k×k convolution with 'same' padding (scaled by the dilation)."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.conv = nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class BNPReLU(nn.Module):
    """BatchNorm followed by a per-channel PReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class ConvBNPReLU(nn.Module):
    """Bias-free k×k convolution, BatchNorm, PReLU."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SpatialPyramid(nn.Module):
    """Reduce → split → transform → merge (HFF) of an ESP module, without its normalisation.

    ``c1`` reduces to d = N/5 channels (the first branch takes the remainder, so
    the merged width is exactly N); ``d1`` … ``d16`` are the dilated branches.
    """

    def __init__(self, n_in: int, n_out: int, reduce_kernel: int, stride: int):
        super().__init__()
        d = n_out // len(DILATIONS)
        first = n_out - (len(DILATIONS) - 1) * d
        self.c1 = Conv(n_in, d, reduce_kernel, stride)
        for rate in DILATIONS:
            setattr(self, f"d{rate}", Conv(d, first if rate == 1 else d, 3, dilation=rate))

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.c1(x)
        outputs = [self.d1(reduced)]
        fused = None
        for rate in DILATIONS[1:]:
            branch = getattr(self, f"d{rate}")(reduced)
            fused = branch if fused is None else fused + branch  # hierarchical feature fusion
            outputs.append(fused)
        return torch.cat(outputs, 1)


class StridedESP(SpatialPyramid):
    """The down-sampling ESP module: strided 3×3 reduction, no shortcut, BatchNorm + PReLU."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__(n_in, n_out, reduce_kernel=3, stride=2)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.merge(x)))


class ESPModule(SpatialPyramid):
    """The ESP module: 1×1 reduction, HFF merge, identity shortcut (``residual``), BatchNorm + PReLU."""

    def __init__(self, n_in: int, n_out: int, residual: bool = True):
        super().__init__(n_in, n_out, reduce_kernel=1, stride=1)
        self.residual = residual
        self.bn = BNPReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = self.merge(x)
        return self.bn(x + merged if self.residual else merged)


class InputPyramid(nn.Module):
    """The input image down-sampled ``times`` times by 3×3 average pooling of stride 2 (input reinforcement)."""

    def __init__(self, times: int):
        super().__init__()
        self.pool = nn.ModuleList(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        for pool in self.pool:
            image = pool(image)
        return image


class ESPNetC(nn.Module):
    """ESPNet-C, the encoder: B×3×H×W normalised image → B×classes×H/8×W/8 logits.

    ``p`` and ``q`` are the numbers of ESP modules at 1/4 and 1/8 resolution
    (α2 and α3 in the paper). :meth:`features` also returns the intermediate maps the decoder uses.
    """

    def __init__(self, classes: int = 20, p: int = 2, q: int = 8):
        super().__init__()
        self.classes, self.p, self.q = classes, p, q
        self.level1 = ConvBNPReLU(3, 16, 3, stride=2)
        self.sample1 = InputPyramid(1)
        self.sample2 = InputPyramid(2)
        self.b1 = BNPReLU(16 + 3)
        self.level2_0 = StridedESP(16 + 3, 64)
        self.level2 = nn.ModuleList(ESPModule(64, 64) for _ in range(p))
        self.b2 = BNPReLU(128 + 3)
        self.level3_0 = StridedESP(128 + 3, 128)
        self.level3 = nn.ModuleList(ESPModule(128, 128) for _ in range(q))
        self.b3 = BNPReLU(256)
        self.classifier = Conv(256, classes, 1)

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``level1`` B×16×H/2×W/2, ``level2`` B×131×H/4×W/4, ``level3`` B×256×H/8×W/8, ``logits`` B×C×H/8×W/8."""
        level1 = self.level1(image)
        down2 = self.level2_0(self.b1(torch.cat([level1, self.sample1(image)], 1)))
        x = down2
        for module in self.level2:
            x = module(x)
        level2 = self.b2(torch.cat([x, down2, self.sample2(image)], 1))
        down3 = self.level3_0(level2)
        x = down3
        for module in self.level3:
            x = module(x)
        level3 = self.b3(torch.cat([down3, x], 1))
        return {"level1": level1, "level2": level2, "level3": level3, "logits": self.classifier(level3)}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features(image)["logits"]


def _upsample2(channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(channels, channels, 2, stride=2, padding=0, output_padding=0, bias=False)


class ESPNet(nn.Module):
    """ESPNet, encoder + decoder: B×3×H×W normalised image (H, W multiples of 8) → B×classes×H×W logits."""

    def __init__(self, classes: int = 20, p: int = 2, q: int = 8):
        super().__init__()
        self.classes, self.p, self.q = classes, p, q
        self.encoder = ESPNetC(classes, p, q)
        self.level3_C = Conv(128 + 3, classes, 1)  # projects the 1/4 features to class space
        self.br = nn.BatchNorm2d(classes, eps=BN_EPS)
        self.conv = ConvBNPReLU(16 + classes, classes, 3)
        self.up_l3 = nn.Sequential(_upsample2(classes))
        self.combine_l2_l3 = nn.Sequential(BNPReLU(2 * classes), ESPModule(2 * classes, classes, residual=False))
        self.up_l2 = nn.Sequential(_upsample2(classes), BNPReLU(classes))
        self.classifier = _upsample2(classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-2] % 8 or image.shape[-1] % 8:
            raise ValueError(f"ESPNet needs an input whose height and width are multiples of 8, got {tuple(image.shape[-2:])}")
        f = self.encoder.features(image)
        quarter = self.up_l3(self.br(f["logits"]))
        half = self.up_l2(self.combine_l2_l3(torch.cat([self.level3_C(f["level2"]), quarter], 1)))
        return self.classifier(self.conv(torch.cat([half, f["level1"]], 1)))
