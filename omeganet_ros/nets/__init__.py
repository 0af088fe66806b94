"""The ΩNet networks (CVPR 2020): DSNet (depth + semantics), CamNet (ego-motion + intrinsics), OFNet (optical flow).

All take B×3×H×W RGB float tensors in [0, 1], any H, W ≥ 64, and run under
``torch.compile`` and ``torch.autocast("cpu", dtype=torch.bfloat16)``.
"""
from __future__ import annotations

import torch.nn as nn

from .camnet import CamNet
from .dsnet import DSNet
from .monodepth2_resnet18 import Monodepth2ResNet18
from .ofnet import OFNet
from .pyramid_encoder import PyramidEncoder


def build_networks(kwargs: dict[str, dict] | None = None) -> dict[str, nn.Module]:
    """The three ΩNet networks, randomly initialised: ``{"dsnet", "camnet", "ofnet"}``.

    ``kwargs``: optional constructor arguments per network, e.g. ``{"camnet": {"pose_negative_slope": 0.1}}``.
    """
    kwargs = kwargs or {}
    return {"dsnet": DSNet(**kwargs.get("dsnet", {})), "camnet": CamNet(**kwargs.get("camnet", {})),
            "ofnet": OFNet(**kwargs.get("ofnet", {}))}


__all__ = ["CamNet", "DSNet", "Monodepth2ResNet18", "OFNet", "PyramidEncoder", "build_networks"]
