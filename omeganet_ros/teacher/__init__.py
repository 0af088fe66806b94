"""Pretrained proxy-label networks (ROS-free): semantic teachers for training on unlabelled video.

* :class:`SemanticTeacher` — the interface the trainer uses: a callable
  B×3×H×W RGB in [0, 1] → B×H×W trainIds (255 = none).
* :class:`ESPNetTeacher` — the default teacher, the Cityscapes ESPNet (Mehta et al.,
  ECCV 2018; MIT licence) bundled in ``omeganet_ros/models/``; it also gives a
  per-pixel confidence (:meth:`ESPNetTeacher.labels`, :meth:`ESPNetTeacher.predict`).
* :mod:`.label_cache` — teacher labels computed once per dataset and kept on disk,
  keyed by frame and teacher (``labels=teacher`` data specs).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .espnet import ESPNet, ESPNetC
from .espnet_teacher import DEFAULT_WEIGHTS, ESPNetTeacher, load_espnet, load_teacher


@runtime_checkable
class SemanticTeacher(Protocol):
    """A network that labels frames for the semantic loss: B×3×H×W RGB in [0, 1] → B×H×W trainIds (255 = none)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


__all__ = ["SemanticTeacher", "ESPNet", "ESPNetC", "ESPNetTeacher", "DEFAULT_WEIGHTS", "load_espnet", "load_teacher"]
