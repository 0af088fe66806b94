"""OFNet: three-frame optical flow, the authors' SD-OFNet (ΩNet, CVPR 2020; SelFlow's network, their ``networks/selflow``)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ConfiguredNet
from .layers import SameConv, cost_volume, encode_triplet, pyramid_levels, resize_flow_align_corners, run_pyramid, warp_tf

LEAKY_SLOPE = 0.2


class FlowPyramid(nn.Module):
    """SelFlow's ``feature_extractor``: per level a stride-2 and a stride-1 3×3 :class:`~.layers.SameConv`
    (leaky ReLU 0.2); 16, 32, 64, 96, 128, 192 channels at 1/2 … 1/64 (ceil sizes, TF "SAME")."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96, 128, 192)):
        super().__init__()
        self.levels = pyramid_levels(channels, SameConv)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return run_pyramid(self.levels, x)


class FlowEstimator(nn.Module):
    """SelFlow's ``estimator_network``: 3×3 SameConvs 128-128-96-64-32 (leaky ReLU), then 2 (none).

    Returns (32-channel features, flow): the flow itself, not a residual on the up-sampled one.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        widths = [in_channels, 128, 128, 96, 64, 32]
        self.layers = nn.ModuleList([SameConv(a, b) for a, b in zip(widths[:-1], widths[1:])]
                                    + [SameConv(32, 2, negative_slope=None)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers[:-1]:
            x = layer(x)
        return x, self.layers[-1](x)


class ContextNetwork(nn.Module):
    """SelFlow's ``context_network``: dilated 3×3 SameConvs (rates 1, 2, 4, 8, 16, 1) 128-128-128-96-64-32, then 2.

    Its output *is* the refined flow (not a residual added to the input flow)."""

    rates = (1, 2, 4, 8, 16, 1)

    def __init__(self, in_channels: int):
        super().__init__()
        widths = [in_channels, 128, 128, 128, 96, 64, 32]
        self.layers = nn.Sequential(*[SameConv(a, b, dilation=r) for a, b, r in zip(widths[:-1], widths[1:], self.rates)],
                                    SameConv(32, 2, negative_slope=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OFNet(ConfiguredNet):
    """Three-frame optical flow network, exactly the authors' SD-OFNet (SelFlow), frames t−1, t, t+1.

    * :class:`FlowPyramid` shared by the three frames, on RGB in [0, 1].
    * From level 6 (1/64) to level 2 (1/4): the coarser forward (t→t+1) and backward (t→t−1)
      flows are resized to this level (``flow_resize``: bilinear, align_corners=True, scaled by the
      size ratio; zeros at level 6); t+1's features are warped with the forward flow and t−1's with
      the backward one (:func:`~.layers.warp_tf`, SelFlow's quirks included); two 9×9 cost volumes
      (:func:`~.layers.cost_volume`) against t's features; one estimator per level reads
      [own cost volume, other cost volume, t's features, own flow, −other flow] for each
      direction (shared weights) and outputs that direction's flow.
    * The context network refines the level-2 flows from [own, other estimator features,
      own flow, −other flow]; the refined flow is resized to H×W (``flow_resize``).

    Any H, W ≥ 64 (TF "SAME" handles odd sizes; no padding). ≈ 4.79 M parameters.
    """

    max_displacement = 4
    finest_level = 1  # pyramid index of level 2 (1/4 resolution), the finest with an estimator

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96, 128, 192)):
        super().__init__(channels=[int(c) for c in channels])
        self.channels = tuple(channels)
        self.num_levels = len(channels)
        self.pyramid = FlowPyramid(channels)
        corr = 2 * (2 * self.max_displacement + 1) ** 2
        # estimators[i - finest_level] serves pyramid index i (the authors' estimator_level_{i+1}).
        self.estimators = nn.ModuleList([FlowEstimator(corr + c + 4) for c in self.channels[self.finest_level:]])
        self.context = ContextNetwork(2 * 32 + 4)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """B×3×H×W RGB in [0, 1] → the 6 pyramid features (cacheable per frame)."""
        return self.pyramid(image)

    def decode(self, prev: list[torch.Tensor], cur: list[torch.Tensor], next: list[torch.Tensor],
               height: int, width: int, backward: bool = True) -> dict[str, list[torch.Tensor]]:
        """Flows from the pyramid features of the three frames (see :meth:`encode`); H×W the image size.

        With ``backward=False`` the backward flow is not refined by the context network and
        ``"flow_bw"`` is left out (the forward estimators need the backward flows of every level).
        """
        b = cur[0].shape[0]
        fw_levels: list[torch.Tensor] = []
        bw_levels: list[torch.Tensor] = []
        flow_fw = flow_bw = None
        feat_fw = feat_bw = None
        for i in range(self.num_levels - 1, self.finest_level - 1, -1):
            f_cur = cur[i]
            size = f_cur.shape[-2:]
            if flow_fw is None:
                flow_fw = flow_bw = f_cur.new_zeros(b, 2, size[0], size[1], dtype=torch.float32)
            else:
                flow_fw = resize_flow_align_corners(flow_fw, size)
                flow_bw = resize_flow_align_corners(flow_bw, size)
            cv_fw = cost_volume(f_cur, warp_tf(next[i], flow_fw), self.max_displacement)
            cv_bw = cost_volume(f_cur, warp_tf(prev[i], flow_bw), self.max_displacement)
            dtype = f_cur.dtype
            inp_fw = torch.cat([cv_fw.to(dtype), cv_bw.to(dtype), f_cur, flow_fw.to(dtype), -flow_bw.to(dtype)], 1)
            inp_bw = torch.cat([cv_bw.to(dtype), cv_fw.to(dtype), f_cur, flow_bw.to(dtype), -flow_fw.to(dtype)], 1)
            feats, flows = self.estimators[i - self.finest_level](torch.cat([inp_fw, inp_bw], dim=0))
            flow_fw, flow_bw = flows[:b].float(), flows[b:].float()
            feat_fw, feat_bw = feats[:b], feats[b:]
            if i > self.finest_level:
                fw_levels.append(flow_fw)
                bw_levels.append(flow_bw)

        dtype = feat_fw.dtype
        ctx_fw = torch.cat([feat_fw, feat_bw, flow_fw.to(dtype), -flow_bw.to(dtype)], 1)
        if backward:
            ctx_bw = torch.cat([feat_bw, feat_fw, flow_bw.to(dtype), -flow_fw.to(dtype)], 1)
            refined = self.context(torch.cat([ctx_fw, ctx_bw], dim=0)).float()
            refined_fw, refined_bw = refined[:b], refined[b:]
        else:
            refined_fw = self.context(ctx_fw).float()
        out = {"flow_fw": [resize_flow_align_corners(refined_fw, (height, width)), refined_fw] + fw_levels[::-1]}
        if backward:
            out["flow_bw"] = [resize_flow_align_corners(refined_bw, (height, width)), refined_bw] + bw_levels[::-1]
        return out

    def forward(self, prev: torch.Tensor, cur: torch.Tensor, next: torch.Tensor,
                backward: bool = True) -> dict[str, list[torch.Tensor]]:
        """Three B×3×H×W RGB frames in [0, 1] (t−1, t, t+1) → dict:

        * ``"flow_fw"``: list; [0] B×2×H×W flow t→t+1 in pixels, then the level flows finest
          (1/4, after the context network) → coarsest (1/64), each in its own pixels;
        * ``"flow_bw"``: the same for t→t−1 (absent with ``backward=False``).
        """
        fp, fc, fn = encode_triplet(self.encode, prev, cur, next)
        return self.decode(fp, fc, fn, cur.shape[-2], cur.shape[-1], backward=backward)
