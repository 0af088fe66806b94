"""LegacyOFNet: this package's first OFNet (PWC-Net style, before the authors' code was followed); kept for checkpoints trained with it."""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ConfiguredNet
from .layers import (correlation, encode_triplet, normalize_image, pad_to_multiple, pyramid_levels, run_pyramid,
                     scaled_size, upsample_flow, warp)


def _conv(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3×3 conv (zero padding, bias) + LeakyReLU 0.2, as in PWC-Net: no BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.LeakyReLU(0.2, inplace=True),
    )


class FlowFeaturePyramid(nn.Module):
    """Six levels, each a stride-2 then a stride-1 3×3 conv with LeakyReLU 0.2; 1/2 … 1/64 resolution."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96, 128, 192)):
        super().__init__()
        self.levels = pyramid_levels(channels, _conv)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return run_pyramid(self.levels, x)


class FlowEstimator(nn.Module):
    """3×3 convs 128-128-96-64-32 (LeakyReLU 0.2) then a 3×3 conv to a 2-channel flow residual.

    Returns the 32-channel features (input of the context network) and the residual.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv(in_channels, 128), _conv(128, 128), _conv(128, 96), _conv(96, 64), _conv(64, 32))
        self.predict = nn.Conv2d(32, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(x)
        return x, self.predict(x)


class ContextNetwork(nn.Module):
    """PWC-Net context network: dilated 3×3 convs (rates 1, 2, 4, 8, 16, 1), 128-128-128-96-64-32, then 2 channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(in_channels, 128, dilation=1), _conv(128, 128, dilation=2), _conv(128, 128, dilation=4),
            _conv(128, 96, dilation=8), _conv(96, 64, dilation=16), _conv(64, 32, dilation=1),
            nn.Conv2d(32, 2, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class LegacyOFNet(ConfiguredNet):
    """Three-frame optical flow network (frames t−1, t, t+1).

    * A 6-level feature pyramid (16/32/64/96/128/192 channels, LeakyReLU 0.2,
      no BatchNorm), shared by the three frames.
    * At each level from 6 (1/64) to 2 (1/4): the coarser forward flow t→t+1 and
      backward flow t→t−1 are upsampled ×2 (bilinear, magnitude ×2); the t+1
      features are warped with the forward flow and the t−1 features with the
      backward flow; two ±4 px correlations (81 channels each) against the t
      features; an estimator (128-128-96-64-32-2) over
      [own-direction correlation, other-direction correlation, t features,
      own flow, other flow] predicts a residual added to the upsampled flow.
      As in SelFlow, one estimator per level serves both directions, with the
      inputs swapped (both run as one batch).
    * A dilated context network (rates 1, 2, 4, 8, 16, 1) refines the level-2
      flows (residual, as in PWC-Net).
    * The 1/4-resolution flow is bilinearly upsampled ×4 with its magnitude ×4.

    Choices where the paper is silent, following PWC-Net: zero padding, the
    estimator predicts a residual on the upsampled flow, a LeakyReLU on the
    correlation, correlation normalised by the channel count.

    Any H, W ≥ 64: inputs are replicate-padded bottom/right to a multiple of 64
    and outputs cropped back. ≈ 4.75 M parameters (paper: ≈ 4.8 M; the gap is
    within PWC-Net details the paper does not give, e.g. biases or upsampled
    estimator features passed between levels).
    """

    max_displacement = 4
    finest_level = 1  # index into the pyramid features: level 2, 1/4 resolution

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96, 128, 192)):
        super().__init__(channels=[int(c) for c in channels])
        self.channels = tuple(channels)
        self.num_levels = len(channels)
        self.pyramid = FlowFeaturePyramid(channels)
        corr_ch = (2 * self.max_displacement + 1) ** 2
        # estimators[i] serves pyramid level i (0-based); levels below finest_level have none.
        self.estimators = nn.ModuleList(
            [nn.Identity() if i < self.finest_level else FlowEstimator(2 * corr_ch + c + 4)
             for i, c in enumerate(channels)]
        )
        self.context = ContextNetwork(32 + 2)
        self.corr_act = nn.LeakyReLU(0.2)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """B×3×H×W RGB in [0, 1] → the 6 pyramid features of the image padded to a multiple of 64.

        Cacheable per frame: a stream needs one new encoding per frame, then :meth:`decode`.
        """
        return self.pyramid(normalize_image(pad_to_multiple(image, 64)))

    def decode(self, prev: list[torch.Tensor], cur: list[torch.Tensor], next: list[torch.Tensor],
               height: int, width: int, backward: bool = True) -> dict[str, list[torch.Tensor]]:
        """Flows from the pyramid features of the three frames (see :meth:`encode`); H×W the unpadded size.

        With ``backward=False`` the backward flow is not refined at level 2 nor by the
        context network, and ``"flow_bw"`` is left out (saves ~30 % at inference).
        """
        b = cur[0].shape[0]
        fw_levels: list[torch.Tensor] = []
        bw_levels: list[torch.Tensor] = []
        flow_fw = flow_bw = None
        x = None
        for i in range(self.num_levels - 1, self.finest_level - 1, -1):
            f_cur = cur[i]
            if flow_fw is None:
                next_w, prev_w = next[i], prev[i]
                zeros = f_cur.new_zeros(b, 2, f_cur.shape[2], f_cur.shape[3])
                up_fw, up_bw = zeros, zeros
            else:
                up_fw, up_bw = upsample_flow(flow_fw, 2), upsample_flow(flow_bw, 2)
                next_w, prev_w = warp(next[i], up_fw), warp(prev[i], up_bw)
            corr_fw = self.corr_act(correlation(f_cur, next_w, self.max_displacement))
            corr_bw = self.corr_act(correlation(f_cur, prev_w, self.max_displacement))
            up_fw = up_fw.to(f_cur.dtype)
            up_bw = up_bw.to(f_cur.dtype)
            inp_fw = torch.cat([corr_fw, corr_bw, f_cur, up_fw, up_bw], dim=1)
            finest = i == self.finest_level
            if finest and not backward:
                x, res = self.estimators[i](inp_fw)
                flow_fw = up_fw.float() + res.float()
            else:
                inp_bw = torch.cat([corr_bw, corr_fw, f_cur, up_bw, up_fw], dim=1)
                x, res = self.estimators[i](torch.cat([inp_fw, inp_bw], dim=0))
                flows = torch.cat([up_fw, up_bw], dim=0).float() + res.float()
                flow_fw, flow_bw = flows[:b], flows[b:]
            if finest:
                flows = flow_fw if not backward else torch.cat([flow_fw, flow_bw], dim=0)
                flows = flows + self.context(torch.cat([x, flows.to(x.dtype)], dim=1)).float()
                flow_fw = flows[:b]
                if backward:
                    flow_bw = flows[b:]
            lh, lw = scaled_size(height, width, 2 ** (i + 1))
            fw_levels.append(flow_fw[:, :, :lh, :lw])
            if flow_bw is not None and (backward or not finest):
                bw_levels.append(flow_bw[:, :, :lh, :lw])

        factor = 2 ** (self.finest_level + 1)
        out = {"flow_fw": [upsample_flow(flow_fw, factor)[:, :, :height, :width]] + fw_levels[::-1]}
        if backward:
            out["flow_bw"] = [upsample_flow(flow_bw, factor)[:, :, :height, :width]] + bw_levels[::-1]
        return out

    def forward(self, prev: torch.Tensor, cur: torch.Tensor, next: torch.Tensor,
                backward: bool = True) -> dict[str, list[torch.Tensor]]:
        """Three B×3×H×W RGB frames in [0, 1] (t−1, t, t+1) → dict:

        * ``"flow_fw"``: list; [0] B×2×H×W flow t→t+1 in pixels, then the level
          flows finest (1/4) → coarsest (1/64), each ceil(H/2^l)×ceil(W/2^l) in
          its own pixels;
        * ``"flow_bw"``: the same for t→t−1 (absent with ``backward=False``).
        """
        fp, fc, fn = encode_triplet(self.encode, prev, cur, next)
        return self.decode(fp, fc, fn, cur.shape[-2], cur.shape[-1], backward=backward)
