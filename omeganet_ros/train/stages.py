"""The ΩNet training stages: which networks learn, from which losses, with which frozen helpers.

1. ``DepthPoseStage``: DSNet + CamNet from the photometric reprojection loss
   (monodepth2) and the semantic cross-entropy against proxy labels.
   Intrinsics: learned by CamNet, or the dataset's K where it is known.
2. ``TeacherFlowStage``: OFNet from the photometric loss with forward–backward
   occlusion handling and smoothness.
3. ``DistilledFlowStage``: a student OFNet supervised by the teacher's flow
   where the distillation mask M is 1 and by the rigid flow of the (frozen)
   stage-1 DSNet + CamNet where it is 0, plus the photometric term.
4. ``calibrate_motion_threshold``: no training; picks the motion threshold τ
   that maximises the moving-object IoU where motion ground truth exists.

Every stage computes ``task losses`` (a dict of scalars) that the
multi-task weighting (``weighting.py``) combines.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .. import geometry, pose_proxy
from ..classes import DYNAMIC_TRAIN_IDS, IGNORE_ID
from ..motion import dynamic_class_mask, motion_mask
from ..nets import depth_from_disp
from . import losses

STAGE_NAMES = {1: "depth_pose", 2: "teacher_flow", 3: "distilled_flow", 4: "calibrate_motion"}


def camera_motions(motion_vecs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CamNet's B×2×6 pose vectors → camera motions (t→t−1, t→t+1) as B×4×4, i.e. target → each source."""
    prev_to_cur = geometry.pose_vec_to_mat(motion_vecs[:, 0])
    cur_to_next = geometry.pose_vec_to_mat(motion_vecs[:, 1])
    return geometry.invert_rigid(prev_to_cur), cur_to_next


def choose_intrinsics(mode: str, predicted: torch.Tensor, given: torch.Tensor, has_given: torch.Tensor) -> torch.Tensor:
    """K per sample: ``learned`` (CamNet's), ``given`` (the dataset's; error where unknown) or ``auto`` (given where known)."""
    if mode == "learned":
        return predicted
    if mode == "given":
        if not bool(has_given.all()):
            raise ValueError("intrinsics: 'given' but some training frames have no known K; use 'auto' or 'learned'")
        return given
    if mode == "auto":
        return torch.where(has_given.view(-1, 1, 1), given.to(predicted.dtype), predicted)
    raise ValueError(f"intrinsics mode must be learned, given or auto, got {mode!r}")


def checked_photometric_resolution(value, key: str) -> str:
    """A configured photometric resolution (``input`` | ``level``, see losses.depth_pose_loss); ``key`` names it in the error."""
    if value not in ("input", "level"):
        raise ValueError(f"{key} must be 'input' or 'level', got {value!r}")
    return str(value)


class Stage:
    """Base class. ``trained``: network names the optimiser updates; ``used``: all networks the stage runs."""

    number = 0
    trained: tuple[str, ...] = ()
    used: tuple[str, ...] = ()
    # loss.photometric_resolution where the configuration leaves it unset (None)
    default_photometric_resolution = "level"

    def __init__(self, config: dict):
        self.config = config
        self.loss_cfg = config.get("loss", {})
        if self.loss_cfg.get("photometric") == "census":
            losses.compile_census(bool(self.loss_cfg.get("compile_census", True)))
        self.current_step = 0  # set by the trainer before each step (for schedules such as warm-ups)
        resolution = self.loss_cfg.get("photometric_resolution")
        self.photometric_resolution = checked_photometric_resolution(
            self.default_photometric_resolution if resolution is None else resolution, "loss.photometric_resolution")

    def tasks(self, has_labels: bool) -> list[str]:
        raise NotImplementedError

    def build_networks(self, config: dict) -> dict[str, nn.Module]:
        """The networks of this training run, randomly initialised (the ΩNet ones of the configured architecture)."""
        from ..nets import build_networks

        return build_networks(config["networks"], config["architecture"])

    def attach_data(self, dataset) -> None:
        """Called once with the training dataset before :meth:`tasks` (a stage may depend on what it holds)."""

    def compute(self, batch: dict, nets: dict[str, nn.Module], tasks: list[str], autocast) -> tuple[dict, dict]:
        """(task losses {name: scalar}, logs {name: float}) for one batch."""
        raise NotImplementedError


def _float(outputs):
    """Network outputs (possibly fp16/bf16 under autocast) → float32, keeping the structure."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, dict):
        return {k: _float(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [_float(v) for v in outputs]
    return outputs


class DepthPoseStage(Stage):
    number = 1
    trained = ("dsnet", "camnet")
    used = ("dsnet", "camnet")
    default_photometric_resolution = "input"  # monodepth2's: every disparity scale upsampled to the input

    def tasks(self, has_labels: bool) -> list[str]:
        return ["depth", "semantic"] if has_labels else ["depth"]

    def compute(self, batch, nets, tasks, autocast):
        cfg = self.loss_cfg
        with autocast():
            ds = nets["dsnet"](batch["cur_aug"])
            cam = nets["camnet"](batch["prev_aug"], batch["cur_aug"], batch["next_aug"])
        ds, cam = _float(ds), _float(cam)
        K = choose_intrinsics(self.config.get("intrinsics", "auto"), cam["K"], batch["K"], batch["has_K"])
        to_prev, to_next = camera_motions(cam["motion"])
        scales = int(cfg.get("scales", 4))
        ignore = None
        if bool(cfg.get("ignore_dynamic", False)) and "labels" in batch:
            ignore = self.dynamic_pixels(batch["labels"], batch["cur"].shape[-2:])
        depth = losses.depth_pose_loss(batch["cur"], [batch["prev"], batch["next"]], ds["disp"][:scales], K,
                                       [to_prev, to_next], automask=bool(cfg.get("automask", True)),
                                       smoothness_weight=float(cfg.get("disp_smoothness", losses.DISP_SMOOTHNESS_WEIGHT)),
                                       to_depth=lambda disp: depth_from_disp(nets["dsnet"], disp),
                                       source_reduction=str(cfg.get("source_reduction", "min")),
                                       resolution=self.photometric_resolution, ignore=ignore)
        task_losses = {"depth": depth["loss"]}
        logs = {"photometric": float(depth["photometric"].detach()), "smoothness": float(depth["smoothness"].detach()),
                "automask_kept": float(depth["automask"].mean()), "fx": float(K[:, 0, 0].detach().mean())}
        if ignore is not None:
            logs["dynamic_ignored"] = float(ignore.float().mean())
        consistency_weight = float(cfg.get("pose_consistency_weight", 0.0))
        if consistency_weight > 0:
            # t−1→t and t→t+1 agree (fw ∘ bw ≈ identity): the per-pixel minimum over the two sources lets one
            # pose be wrong where the other explains the pixel, which left an appearance-only CamNet a way out
            acceleration = (cam["motion"][:, 1] - cam["motion"][:, 0]).abs().mean()
            task_losses["depth"] = task_losses["depth"] + consistency_weight * acceleration
            logs["pose_acceleration"] = float(acceleration.detach())
        still_weight = float(cfg.get("still_triplet_weight", 0.0))
        if still_weight > 0:
            # the still triplet (t, t, t) has zero camera motion: L1 of CamNet's 2×6 pose vectors towards 0
            with autocast():
                still = nets["camnet"](batch["cur_aug"], batch["cur_aug"], batch["cur_aug"])
            still_motion = _float(still)["motion"].abs().mean()
            task_losses["depth"] = task_losses["depth"] + still_weight * still_motion
            logs["still_motion"] = float(still_motion.detach())
        proxy_weight = float(cfg.get("pose_proxy_weight", 0.0))
        if proxy_weight > 0:
            proxy = self.rotation_proxy(batch, ds, cam["motion"], K, nets, autocast)
            task_losses["depth"] = task_losses["depth"] + proxy_weight * proxy
            logs["pose_proxy_px"] = float(proxy.detach())
        if "semantic" in tasks:
            task_losses["semantic"] = losses.semantic_loss(ds["semantic"], batch["labels"],
                                                            class_weights=str(cfg.get("semantic_class_weights", "none")))
        return task_losses, logs

    @staticmethod
    def dynamic_pixels(labels: torch.Tensor, size) -> torch.Tensor:
        """``loss.ignore_dynamic``: B×1×H×W bool, the pixels whose proxy label is a class that can move (person,
        rider, vehicles; unlabelled pixels count as static), at the input ``size`` (H, W)."""
        dynamic = dynamic_class_mask(labels)[:, None].float()
        if dynamic.shape[-2:] != tuple(size):
            dynamic = torch.nn.functional.interpolate(dynamic, size=tuple(size), mode="nearest")
        return dynamic > 0

    @staticmethod
    def rotation_proxy(batch, ds, motion_vecs, K, nets, autocast) -> torch.Tensor:
        """``loss.pose_proxy_weight``: CamNet's rotations against PnP fits of the (frozen) OFNet's flows on
        the current DSNet depth, pixels of DSNet's dynamic classes left out (:mod:`omeganet_ros.pose_proxy`), in px."""
        with torch.no_grad():
            with autocast():
                flows = nets["ofnet"](batch["prev"], batch["cur"], batch["next"])
            depth = depth_from_disp(nets["dsnet"], ds["disp_full"].detach().float())
            static = pose_proxy.static_pixels(ds["semantic"].detach().argmax(1))
            to_next, found_next = pose_proxy.proxy_motions(depth, flows["flow_fw"][0].float(), K, static)
            to_prev, found_prev = pose_proxy.proxy_motions(depth, flows["flow_bw"][0].float(), K, static)
        return pose_proxy.rotation_proxy_loss(motion_vecs, to_prev, to_next,
                                              torch.stack([found_prev, found_next], dim=1), K[:, 0, 0].detach())


class TeacherFlowStage(Stage):
    number = 2
    trained = ("ofnet",)
    used = ("ofnet",)

    def tasks(self, has_labels: bool) -> list[str]:
        return ["flow"]

    def compute(self, batch, nets, tasks, autocast):
        """Bidirectional (UnFlow-style) training in one OFNet pass over 3B triplets.

        (t−1, t, t+1) gives t→t+1 and t→t−1. OFNet estimates flows from a triplet's centre
        frame only, so the reverse flows that the forward–backward check needs come from
        triplets centred on the sources: with five-frame items (``data.context: 1``) the
        proper ones, (t, t+1, t+2) for t+1→t and (t−2, t−1, t) for t−1→t, as at inference;
        with triplets only, the degenerate (t, t+1, t) and (t, t−1, t). They are trained with
        the same loss, so both directions learn to agree.
        """
        cfg = self.loss_cfg
        b = batch["cur"].shape[0]
        with autocast():
            prev_in, centre_in, next_in = reverse_triplets(batch, augmented=True)
            out = nets["ofnet"](prev_in, centre_in, next_in)
        out = _float(out)
        fw = [f[:b] for f in out["flow_fw"]]  # t → t+1
        bw = [f[:b] for f in out["flow_bw"]]  # t → t−1
        proper = "prev2" in batch
        # centre t+1: its backward flow (proper triplet) or its flow to the repeated t (degenerate)
        next_to_cur = [f[b:2 * b] for f in (out["flow_bw"] if proper else out["flow_fw"])]
        prev_to_cur = [f[2 * b:] for f in out["flow_fw"]]  # centre t−1: its forward flow, to t
        # An untrained OFNet's flows disagree everywhere, so the check would mask every pixel:
        # it starts after a warm-up.
        check = cfg.get("occlusion", "fwd_bwd") == "fwd_bwd" and \
            self.current_step >= int(cfg.get("occlusion_warmup_steps", 100))
        weights = cfg.get("flow_level_weights")
        options = dict(smoothness_weight=float(cfg.get("flow_smoothness", 0.02)),
                       alpha1=float(cfg.get("occlusion_alpha1", losses.OCCLUSION_ALPHA1)),
                       alpha2=float(cfg.get("occlusion_alpha2", losses.OCCLUSION_ALPHA2)),
                       min_visible=float(cfg.get("occlusion_min_visible", 0.5)),
                       resolution=self.photometric_resolution,
                       metric=str(cfg.get("photometric", "ssim_l1")),
                       level_weights=None if weights is None else [float(w) for w in weights])
        main = losses.optical_flow_loss(batch["cur"], [batch["next"], batch["prev"]], [fw, bw],
                                        [next_to_cur[0], prev_to_cur[0]] if check else [None, None], **options)
        from_next = losses.optical_flow_loss(batch["next"], [batch["cur"]], [next_to_cur],
                                             [fw[0]] if check else [None], **options)
        from_prev = losses.optical_flow_loss(batch["prev"], [batch["cur"]], [prev_to_cur],
                                             [bw[0]] if check else [None], **options)
        loss = (2 * main["loss"] + from_next["loss"] + from_prev["loss"]) / 4
        # the mean flow length (px) tells a collapse to zero flow from learning, long before validation does
        logs = {"photometric": float(main["photometric"].detach()), "smoothness": float(main["smoothness"].detach()),
                "visible": float(main["visible"].mean()), "flow_magnitude": float(fw[0].detach().norm(dim=1).mean())}
        return {"flow": loss}, logs


def reverse_triplets(batch: dict, augmented: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OFNet inputs (prev, centre, next), 3B×3×H×W: the triplet of t, then one centred on t+1, then one on t−1.

    With five-frame items (``prev2``/``next2``): (t, t+1, t+2) and (t−2, t−1, t), whose
    backward resp. forward flow is t+1→t resp. t−1→t. Without: (t, t+1, t) and (t, t−1, t),
    whose forward flow is the one back to t.
    """
    key = (lambda name: name + "_aug") if augmented else (lambda name: name)
    prev, cur, nxt = batch[key("prev")], batch[key("cur")], batch[key("next")]
    if "prev2" in batch:
        return (torch.cat([prev, cur, batch[key("prev2")]]), torch.cat([cur, nxt, prev]),
                torch.cat([nxt, batch[key("next2")], cur]))
    return torch.cat([prev, cur, cur]), torch.cat([cur, nxt, prev]), torch.cat([nxt, cur, cur])


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return net.module if hasattr(net, "module") else net


@torch.no_grad()
def reverse_flows(ofnet: nn.Module, batch: dict, autocast) -> list[torch.Tensor]:
    """Full-resolution flows t+1→t and t−1→t for the forward–backward check (no gradient), from the
    triplets of :func:`reverse_triplets` centred on t+1 and t−1 (one batched pass)."""
    b = batch["cur"].shape[0]
    prev_in, centre_in, next_in = (x[b:] for x in reverse_triplets(batch))
    with autocast():
        out = ofnet(prev_in, centre_in, next_in)
    proper = "prev2" in batch
    next_to_cur = (out["flow_bw"] if proper else out["flow_fw"])[0][:b].float()
    prev_to_cur = out["flow_fw"][0][b:].float()
    return [next_to_cur, prev_to_cur]


class DistilledFlowStage(Stage):
    number = 3
    trained = ("ofnet",)
    used = ("ofnet", "teacher", "dsnet", "camnet")

    def __init__(self, config: dict):
        super().__init__(config)
        self.rigid_rotation = config.get("rigid_rotation", "camnet")
        if self.rigid_rotation not in ("camnet", "flow"):
            raise ValueError(f"rigid_rotation must be 'camnet' or 'flow', got {self.rigid_rotation!r}")

    def tasks(self, has_labels: bool) -> list[str]:
        return ["distillation", "photometric"]

    @torch.no_grad()
    def targets(self, batch, nets, autocast) -> dict:
        """Teacher flows, rigid flows and distillation masks for both directions (frozen networks)."""
        with autocast():
            teacher = nets["teacher"](batch["prev"], batch["cur"], batch["next"])
            ds = nets["dsnet"](batch["cur"])
            cam = nets["camnet"](batch["prev"], batch["cur"], batch["next"])
        teacher, ds, cam = _float(teacher), _float(ds), _float(cam)
        K = choose_intrinsics(self.config.get("intrinsics", "auto"), cam["K"], batch["K"], batch["has_K"])
        to_prev, to_next = camera_motions(cam["motion"])
        depth = depth_from_disp(nets["dsnet"], ds["disp_full"])
        semantic = ds["semantic"].argmax(1)
        if self.config.get("distillation_semantics", "dsnet") == "labels":
            semantic = torch.where(batch["labels"] != IGNORE_ID, batch["labels"], semantic)
        if self.rigid_rotation == "flow":  # as the engine's rotation_from_flow: the teacher's flow fitted on the depth
            static = pose_proxy.static_pixels(semantic)
            to_prev, to_next = (pose_proxy.with_fitted_rotation(motion, depth, flows[0], K, static)[0]
                                for motion, flows in ((to_prev, teacher["flow_bw"]), (to_next, teacher["flow_fw"])))
        xi = float(self.loss_cfg.get("consistency_threshold", 0.5))
        out = {}
        for name, to_source, flows in (("fw", to_next, teacher["flow_fw"]), ("bw", to_prev, teacher["flow_bw"])):
            rigid = geometry.rigid_flow(depth, K, to_source)
            parts = losses.distillation_mask(flows[0], rigid, semantic, consistency_threshold=xi)
            out[name] = {"teacher": flows[0], "rigid": rigid, "mask": parts["mask"]}
        reverse = reverse_flows(nets["teacher"], batch, autocast)
        a1 = float(self.loss_cfg.get("occlusion_alpha1", losses.OCCLUSION_ALPHA1))
        a2 = float(self.loss_cfg.get("occlusion_alpha2", losses.OCCLUSION_ALPHA2))
        out["fw"]["visible"] = losses.occlusion_mask(out["fw"]["teacher"], reverse[0], a1, a2)
        out["bw"]["visible"] = losses.occlusion_mask(out["bw"]["teacher"], reverse[1], a1, a2)
        return out

    def compute(self, batch, nets, tasks, autocast):
        targets = self.targets(batch, nets, autocast)
        with autocast():
            student = nets["ofnet"](batch["prev_aug"], batch["cur_aug"], batch["next_aug"])
        student = _float(student)
        distill = photometric = 0.0
        h, w = batch["cur"].shape[-2:]
        for name, source, flows in (("fw", batch["next"], student["flow_fw"]), ("bw", batch["prev"], student["flow_bw"])):
            t = targets[name]
            distill = distill + losses.distillation_loss(flows, t["teacher"], t["rigid"], t["mask"]) / 2
            levels = losses.flow_levels_full_res(flows, h, w)
            for flow in levels:
                photometric = photometric + losses.flow_photometric_loss(
                    batch["cur"], source, flow, t["visible"], metric=str(self.loss_cfg.get("photometric", "ssim_l1"))) / (
                    2 * len(levels))
        logs = {"mask_teacher": float(targets["fw"]["mask"].mean())}
        # The distillation L1 is in pixels (1–5 at the start) and the photometric term 0.1–0.2:
        # fixed factors put them on one scale before the multi-task weighting.
        return {"distillation": float(self.loss_cfg.get("distillation_weight", 1.0)) * distill,
                "photometric": float(self.loss_cfg.get("photometric_weight", 1.0)) * photometric}, logs


STAGES = {1: DepthPoseStage, 2: TeacherFlowStage, 3: DistilledFlowStage}


def build_stage(config: dict) -> Stage:
    if config.get("architecture") == "moreau":
        from .moreau_stage import MoreauStage

        if int(config.get("stage", 1)) != 1:
            raise ValueError("architecture 'moreau' trains in one stage (stage: 1)")
        return MoreauStage(config)
    number = int(config.get("stage", 1))
    if number not in STAGES:
        raise ValueError(f"stage must be 1, 2 or 3 for training (4 = calibrate τ), got {number}")
    return STAGES[number](config)


def calibrate_motion_threshold(nets: dict[str, nn.Module], dataset, device="cpu", max_items: int = 200,
                               thresholds=None, dynamic_classes=DYNAMIC_TRAIN_IDS) -> dict:
    """Stage 4: the τ in ``thresholds`` that maximises the moving-class IoU against motion ground truth.

    ``dataset`` a :class:`~omeganet_ros.train.data.TripletDataset` (no augmentation) whose
    frames carry motion ground truth. Each frame's motion probability and trainIds are the node's
    (``train.scene.predict_triplet``: the engine's inference path, at the frame's own size), and its mask at
    τ is the engine's (``motion.motion_mask`` with ``dynamic_classes``, the engine's default).
    Returns {"threshold", "iou_moving", "per_threshold", "num_images"}.
    """
    from ..evaluate.motion import MotionEvaluator
    from .scene import predict_triplet

    thresholds = np.round(np.arange(0.05, 0.951, 0.05), 3) if thresholds is None else np.asarray(thresholds)
    evaluators = [MotionEvaluator() for _ in thresholds]
    for net in nets.values():
        net.eval()
    used = 0
    for index in range(len(dataset)):
        if used >= max_items:
            break
        s, c = dataset.items[index]
        record = dataset.sequences[s].frames[c]
        if record.motion is None:
            continue
        scene = predict_triplet(nets, dataset, index, device=device)
        if scene is None:
            continue
        gt = np.asarray(record.motion())
        for tau, evaluator in zip(thresholds, evaluators):
            mask = motion_mask(scene.motion_probability, scene.semantic, float(tau), dynamic_classes)
            evaluator.add(mask[0].cpu().numpy(), gt)
        used += 1
    if not used:
        raise ValueError("no frame with motion ground truth to calibrate the motion threshold on")
    results = [e.result() for e in evaluators]
    ious = [r["iou_moving"] if r["iou_moving"] is not None else 0.0 for r in results]
    best = int(np.argmax(ious))
    return {"threshold": float(thresholds[best]), "iou_moving": float(ious[best]), "num_images": used,
            "per_threshold": {f"{float(t):.2f}": float(i) for t, i in zip(thresholds, ious)}}
