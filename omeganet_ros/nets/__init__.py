"""The ΩNet networks (CVPR 2020): DSNet (depth + semantics), CamNet (ego-motion + intrinsics), OFNet (optical flow).

Two architectures, chosen with ``build_networks(architecture=...)``:

* ``"official"`` (default): :class:`DSNet`, :class:`CamNet`, :class:`OFNet` — exactly the
  authors' networks (their TensorFlow inference code is the specification; the equivalence
  test compares outputs for the same weights). Their published weights load with
  ``omeganet-import-official``.
* ``"legacy"``: :class:`LegacyDSNet`, :class:`LegacyCamNet`, :class:`LegacyOFNet` — this
  package's first networks, written from the paper before the authors' code was followed.
  Checkpoints trained with them (format ``omeganet_ros.checkpoint/1``, e.g. the bundled
  ``omeganet_synth.pt``) keep loading into them.

All take B×3×H×W RGB float tensors in [0, 1] and run under ``torch.compile`` and
``torch.autocast("cpu", dtype=torch.bfloat16)``.
"""
from __future__ import annotations

import torch.nn as nn

from .camnet import CamNet
from .dsnet import DSNet
from .layers import init_like_tensorflow
from .legacy_camnet import LegacyCamNet
from .legacy_dsnet import LegacyDSNet
from .legacy_ofnet import LegacyOFNet
from .legacy_pyramid_encoder import LegacyPyramidEncoder
from .monodepth2_posenet import Monodepth2PoseNet
from .monodepth2_resnet18 import Monodepth2ResNet18
from .moreau_net import MoreauNet
from .ofnet import OFNet
from .pyramid_encoder import PyramidEncoder

ARCHITECTURES = {
    "official": {"dsnet": DSNet, "camnet": CamNet, "ofnet": OFNet},
    "legacy": {"dsnet": LegacyDSNet, "camnet": LegacyCamNet, "ofnet": LegacyOFNet},
}
DEFAULT_ARCHITECTURE = "official"
MOREAU_NETWORKS = {"moreau": MoreauNet, "posenet": Monodepth2PoseNet}  # architecture "moreau"


def depth_from_disp(dsnet: nn.Module, disp):
    """Depth (relative units) from a DSNet's disparity, by that DSNet's own convention.

    The authors' DSNet: 1 / (mean-normalised disparity); the legacy one: monodepth2's 0.1–100
    mapping of a sigmoid. ``dsnet`` may be wrapped (DistributedDataParallel, torch.compile).
    """
    return getattr(dsnet, "module", dsnet).depth_from_disp(disp)


def build_networks(kwargs: dict[str, dict] | None = None, architecture: str = DEFAULT_ARCHITECTURE) -> dict[str, nn.Module]:
    """The three ΩNet networks, randomly initialised: ``{"dsnet", "camnet", "ofnet"}``.

    ``kwargs``: optional constructor arguments per network, e.g. ``{"camnet": {"pose_negative_slope": 0.1}}``
    (a legacy CamNet argument). ``architecture``: "official" (the authors' networks), "legacy", or "moreau"
    (``{"moreau", "posenet"}`` instead, e.g. ``kwargs={"moreau": {"tasks": ["depth"]}}``).
    """
    networks = MOREAU_NETWORKS if architecture == "moreau" else ARCHITECTURES.get(architecture)
    if networks is None:
        raise ValueError(f"unknown network architecture {architecture!r}; use one of {sorted(ARCHITECTURES) + ['moreau']}")
    kwargs = kwargs or {}
    built = {name: cls(**kwargs.get(name, {})) for name, cls in networks.items()}
    if architecture == "official":
        for net in built.values():
            init_like_tensorflow(net)
    return built


__all__ = ["ARCHITECTURES", "CamNet", "DEFAULT_ARCHITECTURE", "DSNet", "LegacyCamNet", "LegacyDSNet", "LegacyOFNet",
           "LegacyPyramidEncoder", "MOREAU_NETWORKS", "Monodepth2PoseNet", "Monodepth2ResNet18", "MoreauNet", "OFNet", "PyramidEncoder", "build_networks", "depth_from_disp"]
