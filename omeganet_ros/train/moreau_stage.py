"""Training of the Moreau et al. model (``architecture: moreau``): depth + pose, and instances in multi-task mode.

* ``depth`` task: monodepth2's multi-scale photometric loss (``losses.depth_pose_loss``: min reprojection
  over t−1 and t+1, auto-masking, edge-aware smoothness) through :class:`~omeganet_ros.nets.MoreauNet`'s
  disparities and :class:`~omeganet_ros.nets.Monodepth2PoseNet`'s motions (pairs (t−1, t) and (t, t+1),
  the first inverted, as monodepth2). The model estimates no intrinsics: K comes from the data.
* ``instance`` task (MT mode): the L2 loss between predicted and ground-truth centroid offsets on
  thing-instance pixels (the poster), plus a binary cross-entropy on the thing logit over the whole image
  (this package's addition: the poster does not say how thing pixels are found at inference).
  Ground truth: the data's instance ids (the synthetic world's exact ones, a sequence folder's
  ``instance/``). No instance teacher (the authors used Mask R-CNN trained on Cityscapes) can be obtained
  offline here, so on data without instance ids the task is left out with a warning.

``moreau.depth_normalization``: "mean" (default) or "none" (:meth:`~omeganet_ros.nets.MoreauNet.depth_from_disp`);
``moreau.photometric_resolution``: "level" (default: each disparity scale against images downsampled to it) or
"input" (monodepth2: upsampled), :func:`~omeganet_ros.train.losses.depth_pose_loss`. Both defaults are issue 17's
fix: with monodepth2's choices (no normalisation, "input") every run collapsed to a constant-depth plane.
ST mode is ``moreau.tasks: [depth]`` (the network is then built without the instance branch); MT mode is
``[depth, instance]``. The two task losses are combined by the configured weighting (equal, DWA, uncertainty).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .. import geometry
from ..instances import centroid_offsets
from ..nets import build_networks, depth_from_disp
from . import losses
from .stages import Stage, _float, checked_photometric_resolution


def instance_loss(offset: torch.Tensor, thing_logit: torch.Tensor, instance: torch.Tensor,
                  has_instance: torch.Tensor) -> dict[str, torch.Tensor]:
    """Offsets L2 (mean squared distance to the true offset over thing pixels) + thing BCE, on images with ground truth.

    ``offset`` B×2×H×W, ``thing_logit`` B×1×H×W, ``instance`` B×H×W ids (0 = none), ``has_instance`` B bools.
    """
    valid = has_instance.bool()
    if not bool(valid.any()):
        zero = offset.sum() * 0.0
        return {"loss": zero, "offset_l2": zero, "thing_bce": zero}
    offset, thing_logit, instance = offset[valid], thing_logit[valid], instance[valid]
    target = centroid_offsets(instance)
    thing = (instance > 0).unsqueeze(1).float()
    squared = ((offset - target) ** 2).sum(1, keepdim=True)
    offset_l2 = (squared * thing).sum() / thing.sum().clamp(min=1.0)
    thing_bce = F.binary_cross_entropy_with_logits(thing_logit, thing)
    return {"loss": offset_l2 + thing_bce, "offset_l2": offset_l2, "thing_bce": thing_bce}


class MoreauStage(Stage):
    """Depth + pose (+ instances) of the Moreau model; see the module docstring."""

    number = 1
    name = "moreau"
    trained = ("moreau", "posenet")
    used = ("moreau", "posenet")

    def __init__(self, config: dict):
        super().__init__(config)
        self.requested = list(config.get("moreau", {}).get("tasks", ["depth", "instance"]))
        if "depth" not in self.requested or any(t not in ("depth", "instance") for t in self.requested):
            raise ValueError(f"moreau.tasks must include 'depth' and be among depth, instance; got {self.requested}")
        if config.get("intrinsics", "auto") == "learned":
            raise ValueError("intrinsics: 'learned' is not available with architecture 'moreau' (its pose network "
                             "estimates no K); use 'given' or 'auto' with data whose K is known")
        self.photometric_resolution = checked_photometric_resolution(
            config.get("moreau", {}).get("photometric_resolution", "level"), "moreau.photometric_resolution")
        self.has_instances = False

    def build_networks(self, config: dict) -> dict:
        normalization = config.get("moreau", {}).get("depth_normalization", "mean")
        return build_networks({"moreau": {"tasks": self.requested, "depth_normalization": normalization}}, "moreau")

    def attach_data(self, dataset) -> None:
        self.has_instances = bool(getattr(dataset, "has_any_instances", False))
        if "instance" in self.requested and not self.has_instances:
            warnings.warn("moreau: the training data has no instance ids (and no instance teacher is available "
                          "offline): the instance loss is off, this run trains depth + pose only")

    def tasks(self, has_labels: bool) -> list[str]:
        return ["depth", "instance"] if "instance" in self.requested and self.has_instances else ["depth"]

    def compute(self, batch, nets, tasks, autocast):
        cfg = self.loss_cfg
        if not bool(batch["has_K"].all()):
            raise ValueError("architecture 'moreau' needs the camera intrinsics of every training frame "
                             "(synth and sequence folders have them; else give intrinsics=FILE in the data spec)")
        with autocast():
            out = nets["moreau"](batch["cur_aug"])
            # Both pairs in one batch: (t−1, t) and (t, t+1), each in temporal order as monodepth2.
            motions = nets["posenet"](torch.cat([batch["prev_aug"], batch["cur_aug"]]),
                                      torch.cat([batch["cur_aug"], batch["next_aug"]])).float()
        out = _float(out)
        prev_to_cur, cur_to_next = motions.chunk(2)
        K = batch["K"]
        scales = int(cfg.get("scales", 4))
        depth = losses.depth_pose_loss(batch["cur"], [batch["prev"], batch["next"]], out["disp"][:scales], K,
                                       [geometry.invert_rigid(prev_to_cur), cur_to_next],
                                       automask=bool(cfg.get("automask", True)),
                                       smoothness_weight=float(cfg.get("disp_smoothness", losses.DISP_SMOOTHNESS_WEIGHT)),
                                       to_depth=lambda disp: depth_from_disp(nets["moreau"], disp),
                                       resolution=self.photometric_resolution)
        task_losses = {"depth": depth["loss"]}
        logs = {"photometric": float(depth["photometric"].detach()), "smoothness": float(depth["smoothness"].detach()),
                "automask_kept": float(depth["automask"].mean())}
        if "instance" in tasks:
            inst = instance_loss(out["instance_offset"], out["thing_logit"], batch["instance"], batch["has_instance"])
            task_losses["instance"] = inst["loss"]
            logs.update({"offset_l2": float(inst["offset_l2"].detach()), "thing_bce": float(inst["thing_bce"].detach())})
        return task_losses, logs


@torch.no_grad()
def predict_depth(nets: dict, image: torch.Tensor) -> torch.Tensor:
    """B×1×H×W depth (relative units) of the Moreau network for B×3×H×W images in [0, 1]."""
    return depth_from_disp(nets["moreau"], nets["moreau"](image)["disp_full"].float())
