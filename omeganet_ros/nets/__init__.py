"""The ΩNet networks (CVPR 2020): DSNet (depth + semantics), CamNet (ego-motion + intrinsics), OFNet (optical flow).

All take B×3×H×W RGB float tensors in [0, 1], any H, W ≥ 64.
"""
from __future__ import annotations

from .dsnet import DSNet
from .pyramid_encoder import PyramidEncoder

__all__ = ["DSNet", "PyramidEncoder"]
