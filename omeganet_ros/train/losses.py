"""Self-supervised losses of the ΩNet training protocol, written to read like the papers.

Depth and pose (stage 1, monodepth2): view synthesis of the target frame t
from the sources t−1 and t+1 through depth, camera motion and intrinsics; a
photometric error of 0.85·SSIM + 0.15·L1; the per-pixel minimum over sources;
auto-masking of pixels that do not change between frames; multi-scale
disparities upsampled to the input resolution; edge-aware smoothness on
mean-normalised disparity weighted 1e-3 / 2^scale.

Optical flow (stage 2, teacher OFNet): the same photometric error on the
source warped by the flow, counted only on pixels that the forward–backward
check finds visible (UnFlow, Meister et al. 2018; also used by SelFlow):
a pixel is occluded when

    |F_f + F_b(p + F_f)|² > α1 (|F_f|² + |F_b(p + F_f)|²) + α2,   α1 = 0.01, α2 = 0.5

plus an edge-aware first-order smoothness on the flow.

Self-distillation (stage 3, ΩNet Sec. 3.3): a mask M chooses, per pixel, the
teacher's optical flow (M = 1) or the rigid flow from depth and pose (M = 0)
as the student's target:

    M = (Π ∨ C) ∧ B

* Π, semantic prior: the pixel belongs to a potentially dynamic class
  (person, rider, vehicles) — only the optical flow can explain its motion;
* C, consistency: the teacher's motion probability P (``motion.py``) is
  below ξ — teacher and rigid flow agree, so the teacher's flow can be trusted
  even on static classes; where they disagree on a static class the teacher is
  most likely wrong (occlusions), so the rigid flow is used;
* B, boundary: the rigid flow keeps the pixel inside the image; pixels that
  leave the frame have no photometric evidence, so the teacher never learnt
  them and the rigid flow is used.

The poster states the ingredients (semantic priors, boundary mask,
consistency mask → final mask) but not the boolean algebra; the combination
above is the one consistent with its stated intuitions, and is documented in
the README.

Shapes: images B×3×H×W in [0, 1]; disparities B×1×h×w; flows B×2×H×W in
pixels (``geometry`` conventions); masks B×1×H×W floats in {0, 1}.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import geometry
from ..classes import DYNAMIC_TRAIN_IDS, IGNORE_ID
from ..motion import dynamic_class_mask, motion_probability

SSIM_WEIGHT = 0.85  # α of monodepth2: α·SSIM + (1 − α)·L1
DISP_SMOOTHNESS_WEIGHT = 1e-3  # divided by 2^scale
OCCLUSION_ALPHA1 = 0.01  # UnFlow forward–backward check
OCCLUSION_ALPHA2 = 0.5  # pixels²
AUTOMASK_NOISE = 1e-5  # breaks ties between identical identity and reprojection errors (monodepth2)


class SSIM(nn.Module):
    """Per-pixel structural dissimilarity (1 − SSIM)/2 in [0, 1] over 3×3 windows (monodepth2 ``layers.SSIM``).

    Reflection padding keeps the output B×C×H×W.
    """

    def __init__(self):
        super().__init__()
        self.mu_x_pool = nn.AvgPool2d(3, 1)
        self.mu_y_pool = nn.AvgPool2d(3, 1)
        self.sig_x_pool = nn.AvgPool2d(3, 1)
        self.sig_y_pool = nn.AvgPool2d(3, 1)
        self.sig_xy_pool = nn.AvgPool2d(3, 1)
        self.refl = nn.ReflectionPad2d(1)
        self.C1 = 0.01 ** 2
        self.C2 = 0.03 ** 2

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.refl(x)
        y = self.refl(y)
        mu_x = self.mu_x_pool(x)
        mu_y = self.mu_y_pool(y)
        sigma_x = self.sig_x_pool(x ** 2) - mu_x ** 2
        sigma_y = self.sig_y_pool(y ** 2) - mu_y ** 2
        sigma_xy = self.sig_xy_pool(x * y) - mu_x * mu_y
        ssim_n = (2 * mu_x * mu_y + self.C1) * (2 * sigma_xy + self.C2)
        ssim_d = (mu_x ** 2 + mu_y ** 2 + self.C1) * (sigma_x + sigma_y + self.C2)
        return torch.clamp((1 - ssim_n / ssim_d) / 2, 0, 1)


_ssim = SSIM()


CENSUS_PATCH = 7  # UnFlow / DDFlow / SelFlow / ARFlow: a 7×7 census transform
PHOTOMETRIC_METRICS = ("ssim_l1", "census")


def census_transform(image: torch.Tensor, patch: int = CENSUS_PATCH) -> torch.Tensor:
    """Soft census transform B×patch²×H×W of the grey image of ``image`` B×3×H×W in [0, 1] (UnFlow's ternary
    transform): each neighbour's difference to the centre pixel d, as d / √(0.81 + d²) (grey in 0–255)."""
    grey = (image * torch.tensor([0.2989, 0.5870, 0.1140], device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
            ).sum(1, keepdim=True) * 255.0
    neighbours = F.unfold(F.pad(grey, [patch // 2] * 4, mode="replicate"), patch)
    neighbours = neighbours.view(grey.shape[0], patch * patch, *grey.shape[-2:])
    diff = neighbours - grey
    return diff / torch.sqrt(0.81 + diff * diff)


_compiled_census = None


def compile_census(enabled: bool = True) -> None:
    """Run :func:`census_error` through ``torch.compile`` (one fused kernel: ~6× faster on a CPU, where the
    eager loss's 49-channel elementwise chain costs ~9× an SSIM + L1 loss; the first call per shape compiles,
    ~20 s). Falls back to eager when compilation is unavailable. ``enabled=False`` restores eager."""
    global _compiled_census
    _compiled_census = torch.compile(_census_error) if enabled else None


def census_error(pred: torch.Tensor, target: torch.Tensor, patch: int = CENSUS_PATCH) -> torch.Tensor:
    """Ternary census loss B×1×H×W (see :func:`_census_error`), compiled after :func:`compile_census`."""
    global _compiled_census
    if _compiled_census is not None:
        try:
            return _compiled_census(pred, target, patch)
        except Exception as exc:  # no C++ compiler, unsupported platform: keep training, eagerly
            warnings.warn(f"torch.compile of the census loss failed, using the eager loss: {exc}")
            _compiled_census = None
    return _census_error(pred, target, patch)


def _census_error(pred: torch.Tensor, target: torch.Tensor, patch: int = CENSUS_PATCH) -> torch.Tensor:
    """Ternary census loss B×1×H×W (UnFlow; ARFlow's robust form): the soft Hamming distance
    Σ d²/(0.1 + d²) between the two census transforms, through (· + 0.01)^0.4, divided by patch².

    Robust to the brightness and contrast changes between frames that bias an L1/SSIM loss (the
    census loss is what SelFlow, the authors' teacher, trains with). Pixels closer than patch // 2 to
    the border see replicated pixels and are kept.
    """
    d = (census_transform(pred, patch) - census_transform(target, patch)) ** 2
    distance = (d / (0.1 + d)).sum(1, keepdim=True)
    return (distance + 0.01).pow(0.4) / (patch * patch)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, alpha: float = SSIM_WEIGHT,
                      metric: str = "ssim_l1") -> torch.Tensor:
    """Reprojection error B×1×H×W: α·(1 − SSIM)/2 + (1 − α)·|pred − target|, both averaged over colour
    (``metric="ssim_l1"``, monodepth2), or the census loss (``"census"``, :func:`census_error`)."""
    if metric == "census":
        return census_error(pred, target)
    if metric != "ssim_l1":
        raise ValueError(f"photometric metric must be one of {PHOTOMETRIC_METRICS}, got {metric!r}")
    l1 = (pred - target).abs().mean(1, keepdim=True)
    if alpha == 0:
        return l1
    ssim = _ssim(pred, target).mean(1, keepdim=True)
    return alpha * ssim + (1 - alpha) * l1


def sample_at(source: torch.Tensor, pixels: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Bilinearly sample ``source`` B×C×H×W at pixel coordinates ``pixels`` B×2×h×w (u, v) → B×C×h×w.

    Pixel (0, 0) is the centre of the top-left pixel, hence ``align_corners=True``.
    """
    h, w = source.shape[-2:]
    u = 2.0 * pixels[:, 0] / max(w - 1, 1) - 1.0
    v = 2.0 * pixels[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack([u, v], dim=-1)
    return F.grid_sample(source, grid.to(source.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def flow_targets(flow: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates p + F(p), B×2×H×W, where each pixel lands in the other image."""
    _, _, h, w = flow.shape
    return geometry.pixel_grid(h, w, flow.device, flow.dtype)[:2].unsqueeze(0) + flow


def inside_image(flow: torch.Tensor) -> torch.Tensor:
    """B×1×H×W mask, 1 where p + F(p) lies inside the image."""
    _, _, h, w = flow.shape
    target = flow_targets(flow)
    inside = (target[:, 0] >= 0) & (target[:, 0] <= w - 1) & (target[:, 1] >= 0) & (target[:, 1] <= h - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def warp(source: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping: the image B×C×H×W that ``source`` shows at p + flow(p) (flow from target to source)."""
    return sample_at(source, flow_targets(flow))


def depth_flow(depth: torch.Tensor, K: torch.Tensor, motion_to_source: torch.Tensor) -> torch.Tensor:
    """Rigid flow target → source, B×2×H×W pixels, from target depth B×1×H×W, K B×3×3 and the
    camera motion target→source B×4×4 (pose of the source camera in the target camera)."""
    return geometry.rigid_flow(depth, K, motion_to_source)


def reprojection_loss(target: torch.Tensor, sources: Sequence[torch.Tensor], flows: Sequence[torch.Tensor],
                      automask: bool = True, alpha: float = SSIM_WEIGHT,
                      source_reduction: str = "min",
                      ignore: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Monodepth2's photometric loss for one scale.

    ``target`` B×3×H×W; ``sources`` the source images; ``flows`` target→source
    flows (rigid or optical) B×2×H×W, one per source. ``source_reduction``: ``min`` (monodepth2's per-pixel
    minimum over the sources) or ``mean`` (its ``--avg_reprojection``: every source's warp counts, so every
    source's pose must explain the pixel). Returns (scalar loss,
    B×1×H×W mask of pixels the loss kept: 1 where a warped source beat the
    unwarped ones, i.e. the pixel was not auto-masked). ``ignore``: B×1×H×W bool, pixels left out of the
    mean (none: every pixel counts).
    """
    if len(sources) != len(flows) or not sources:
        raise ValueError(f"need one flow per source, got {len(sources)} sources and {len(flows)} flows")
    if source_reduction not in ("min", "mean"):
        raise ValueError(f"source_reduction must be 'min' or 'mean', got {source_reduction!r}")
    reprojection = torch.cat([photometric_error(warp(s, f), target, alpha) for s, f in zip(sources, flows)], 1)
    if source_reduction == "mean":
        reprojection = reprojection.mean(1, keepdim=True)
    if not automask:
        return _mean_outside(reprojection.min(1)[0], ignore), torch.ones_like(reprojection[:, :1])
    identity = torch.cat([photometric_error(s, target, alpha) for s in sources], 1)
    identity = identity + torch.randn_like(identity) * AUTOMASK_NOISE
    combined = torch.cat([identity, reprojection], 1)
    loss, choice = combined.min(1)
    kept = (choice >= len(sources)).unsqueeze(1).to(target.dtype)
    return _mean_outside(loss, ignore), kept


def _mean_outside(per_pixel: torch.Tensor, ignore: torch.Tensor | None) -> torch.Tensor:
    """Mean of B×H×W ``per_pixel`` over the pixels ``ignore`` (B×1×H×W bool, or None) does not mark; 0 when it marks all."""
    return per_pixel.mean() if ignore is None else masked_mean(per_pixel, (~ignore[:, 0]).to(per_pixel.dtype))


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)


def edge_aware_smoothness(values: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean of |∂values| · exp(−|∂image|) over x and y (monodepth2 ``get_smooth_loss``); ``image`` resized to ``values``."""
    image = resize_image(image, *values.shape[-2:])
    grad_x = (values[:, :, :, :-1] - values[:, :, :, 1:]).abs()
    grad_y = (values[:, :, :-1, :] - values[:, :, 1:, :]).abs()
    grad_img_x = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    # A 1-pixel-wide or -high map (the coarsest flow levels at tiny sizes) has no gradient in that direction.
    loss = values.new_zeros(())
    if grad_x.numel():
        loss = loss + (grad_x * torch.exp(-grad_img_x)).mean()
    if grad_y.numel():
        loss = loss + (grad_y * torch.exp(-grad_img_y)).mean()
    return loss


def disparity_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the mean-normalised disparity B×1×h×w (scale-invariant, monodepth2)."""
    norm_disp = disp / (disp.mean((2, 3), keepdim=True) + 1e-7)
    return edge_aware_smoothness(norm_disp, image)


def depth_pose_loss(target: torch.Tensor, sources: Sequence[torch.Tensor], disps: Sequence[torch.Tensor],
                    K: torch.Tensor, motions_to_source: Sequence[torch.Tensor], *, automask: bool = True,
                    smoothness_weight: float = DISP_SMOOTHNESS_WEIGHT,
                    min_depth: float = 0.1, max_depth: float = 100.0,
                    to_depth=None, source_reduction: str = "min",
                    resolution: str = "input", ignore: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Stage-1 loss over all scales (monodepth2): returns ``loss`` and its parts.

    ``disps`` finest first, any resolution each. ``resolution="input"`` (monodepth2): every one is upsampled to
    the input H×W for view synthesis; ``"level"`` (monodepth v1; :func:`level_photometric_loss` for flow):
    each at its own h×w against the images area-downsampled to h×w with K scaled to it, so the coarse scales'
    smooth images reach over displacements of several input pixels, where a full-resolution warp's gradient
    reaches about one. Its smoothness is taken at its own
    resolution with weight ``smoothness_weight / 2**scale``. ``K`` B×3×3 in
    pixels of the input; ``motions_to_source`` B×4×4, one per source, the
    camera motion target→source. Returned: ``loss``, ``photometric``,
    ``smoothness`` (scalars, averaged over scales) and ``automask``
    (B×1×H×W, finest scale). ``to_depth``: the DSNet's disparity → depth (``nets.depth_from_disp``);
    None: monodepth2's mapping into [``min_depth``, ``max_depth``]. ``source_reduction``: see :func:`reprojection_loss`.
    ``ignore``: B×1×H×W bool at the input size, pixels left out of the photometric term (at a coarser level, a
    level pixel is left out when any input pixel under it is; the smoothness keeps every pixel).
    """
    if resolution not in ("input", "level"):
        raise ValueError(f"depth_pose_loss resolution must be 'input' or 'level', got {resolution!r}")
    h, w = target.shape[-2:]
    photometric = target.new_zeros(())
    smoothness = target.new_zeros(())
    kept = None
    for scale, disp in enumerate(disps):
        if resolution == "input" or disp.shape[-2:] == (h, w):
            disp_at, images, K_at = resize_image(disp, h, w), [target, *sources], K
        else:
            disp_at = disp
            images = [F.interpolate(im, size=disp.shape[-2:], mode="area") for im in (target, *sources)]
            K_at = geometry.scale_intrinsics(K, disp.shape[-1] / w, disp.shape[-2] / h)
        depth = (geometry.disp_to_depth(disp_at, min_depth, max_depth) if to_depth is None
                 else to_depth(disp_at))
        flows = [depth_flow(depth, K_at, m) for m in motions_to_source]
        ignore_at = None
        if ignore is not None:
            ignore_at = ignore if ignore.shape[-2:] == depth.shape[-2:] else \
                F.adaptive_max_pool2d(ignore.float(), depth.shape[-2:]) > 0
        scale_loss, scale_kept = reprojection_loss(images[0], images[1:], flows, automask=automask,
                                                   source_reduction=source_reduction, ignore=ignore_at)
        photometric = photometric + scale_loss
        smoothness = smoothness + smoothness_weight / (2 ** scale) * disparity_smoothness(disp, target)
        if kept is None:
            kept = scale_kept
    n = len(disps)
    photometric, smoothness = photometric / n, smoothness / n
    return {"loss": photometric + smoothness, "photometric": photometric, "smoothness": smoothness, "automask": kept}


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_ID,
                  class_weights: str = "none") -> torch.Tensor:
    """Cross-entropy of B×C×H×W logits against B×H×W proxy trainIds (``ignore_index`` = no label).

    Labels of another size are resized by nearest neighbour. With no labelled
    pixel at all the loss is 0 (not NaN) and carries no gradient. ``class_weights``: ``none`` (the plain mean
    over labelled pixels) or ``enet`` (ENet, Paszke et al. 2016: class c weighted 1 / ln(1.02 + p_c), p_c its
    share of the batch's labelled pixels, so thin rare classes such as poles, signs and riders are not drowned
    by road and sky; the batch's frequencies, not the dataset's, because proxy labels arrive with the frames).
    """
    if class_weights not in ("none", "enet"):
        raise ValueError(f"semantic class_weights must be 'none' or 'enet', got {class_weights!r}")
    if labels.shape[-2:] != logits.shape[-2:]:
        labels = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0]
    labels = labels.long()
    labelled = labels != ignore_index
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    weight = None
    if class_weights == "enet":
        counts = torch.bincount(labels[labelled], minlength=logits.shape[1])[: logits.shape[1]].to(logits.dtype)
        weight = 1.0 / torch.log(1.02 + counts / counts.sum())
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)


def occlusion_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = OCCLUSION_ALPHA1,
                   alpha2: float = OCCLUSION_ALPHA2) -> torch.Tensor:
    """Forward–backward check (UnFlow): B×1×H×W mask, 1 = visible, 0 = occluded.

    ``flow_fw`` A→B and ``flow_bw`` B→A, B×2×H×W pixels, the mask is for the
    pixels of A. A pixel is occluded when |F_f + F_b(p + F_f)|² exceeds
    α1·(|F_f|² + |F_b(p + F_f)|²) + α2, or when p + F_f leaves the image.
    """
    bw_at_target = warp(flow_bw, flow_fw)
    mismatch = (flow_fw + bw_at_target).pow(2).sum(1, keepdim=True)
    bound = alpha1 * (flow_fw.pow(2).sum(1, keepdim=True) + bw_at_target.pow(2).sum(1, keepdim=True)) + alpha2
    visible = (mismatch <= bound).to(flow_fw.dtype)
    return visible * inside_image(flow_fw)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over pixels where ``mask`` is 1 (0 when the mask is empty)."""
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def flow_photometric_loss(target: torch.Tensor, source: torch.Tensor, flow: torch.Tensor,
                          visible: torch.Tensor | None = None, alpha: float = SSIM_WEIGHT,
                          metric: str = "ssim_l1") -> torch.Tensor:
    """Photometric error of ``source`` warped by the target→source ``flow``, averaged over ``visible`` pixels."""
    error = photometric_error(warp(source, flow), target, alpha, metric)
    return error.mean() if visible is None else masked_mean(error, visible)


def flow_smoothness(flow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware first-order smoothness of a flow at its own resolution (in its own pixels, so scale-invariant)."""
    return edge_aware_smoothness(flow, image)


def flow_levels_full_res(flows: Sequence[torch.Tensor], height: int, width: int) -> list[torch.Tensor]:
    """OFNet's training flows, upsampled (values rescaled) to the input size, finest first.

    ``flows[0]`` is the full-resolution output and ``flows[1:]`` the per-level
    flows; when levels are present the output itself is skipped (it repeats
    the finest level).
    """
    levels = list(flows[1:]) if len(flows) > 1 else list(flows)
    return [f if f.shape[-2:] == (height, width) else geometry.resize_flow(f, height, width) for f in levels]


def level_photometric_loss(target: torch.Tensor, source: torch.Tensor, flow: torch.Tensor,
                           visible: torch.Tensor | None = None, metric: str = "ssim_l1") -> torch.Tensor:
    """Photometric loss of one flow level at its own resolution h×w (UnFlow's pyramid loss).

    ``flow`` B×2×h×w in pixels of h×w; ``target``, ``source`` B×3×H×W are
    area-downsampled to h×w and ``visible`` B×1×H×W keeps a pixel of h×w only
    where its whole footprint is visible. Coarse levels thus compare coarse
    images, whose smooth intensity gradients reach over large displacements,
    where an upsampled flow only sees full-resolution gradients a pixel wide.
    Below 3×3 (no SSIM window) the error is L1 only; the census metric needs a
    patch-sized level (else SSIM + L1).
    """
    h, w = flow.shape[-2:]
    if target.shape[-2:] != (h, w):
        target = F.interpolate(target, size=(h, w), mode="area")
        source = F.interpolate(source, size=(h, w), mode="area")
        if visible is not None:
            visible = (F.interpolate(visible, size=(h, w), mode="area") > 0.999).to(visible.dtype)
    alpha = SSIM_WEIGHT if min(h, w) >= 3 else 0.0
    if metric == "census" and min(h, w) < CENSUS_PATCH:
        metric = "ssim_l1"
    return flow_photometric_loss(target, source, flow, visible, alpha, metric)


def optical_flow_loss(target: torch.Tensor, sources: Sequence[torch.Tensor], flows: Sequence[Sequence[torch.Tensor]],
                      reverse_flows: Sequence[torch.Tensor | None], *, smoothness_weight: float = 0.02,
                      alpha1: float = OCCLUSION_ALPHA1, alpha2: float = OCCLUSION_ALPHA2,
                      min_visible: float = 0.0, resolution: str = "level", metric: str = "ssim_l1",
                      level_weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Stage-2 loss of the teacher OFNet, all levels.

    For each source k: ``flows[k]`` the OFNet list (full-res output, then
    levels) target→source; ``reverse_flows[k]`` a full-resolution flow
    source→target used only for the forward–backward occlusion check
    (detached; None disables the check). When the check finds fewer than
    ``min_visible`` of a batch's pixels visible, the flows are taken as not yet
    consistent enough to judge occlusions and that batch is not masked.
    Photometric error on visible pixels of each level, at the level's own
    resolution (``resolution="level"``, :func:`level_photometric_loss`) or
    upsampled to H×W (``"input"``, monodepth2's choice for depth), plus
    ``smoothness_weight / 2**level`` edge-aware smoothness at each level's own
    resolution. Returns ``loss``, ``photometric``, ``smoothness`` and
    ``visible`` (finest, first source).

    ``level_weights`` None: the levels ``flows[k][1:]`` averaged with equal weights,
    the full-resolution output left out (it repeats the finest level). Given: one
    weight per entry of ``flows[k]`` — the full-resolution output (at H×W) first, then
    the levels finest first (missing trailing weights are 0) — normalised to sum 1, so
    the finest outputs dominate (PWC-Net/ARFlow: the coarsest levels only learn the mean
    flow). ``metric``: ``ssim_l1`` or ``census`` (:func:`photometric_error`).
    """
    if resolution not in ("level", "input"):
        raise ValueError(f"flow loss resolution must be 'level' or 'input', got {resolution!r}")
    if level_weights is not None:
        return _weighted_flow_loss(target, sources, flows, reverse_flows, smoothness_weight=smoothness_weight,
                                   alpha1=alpha1, alpha2=alpha2, min_visible=min_visible, resolution=resolution,
                                   metric=metric, level_weights=level_weights)
    h, w = target.shape[-2:]
    photometric = target.new_zeros(())
    smoothness = target.new_zeros(())
    first_visible = None
    for source, flow_list, reverse in zip(sources, flows, reverse_flows):
        finest = flow_list[0]
        visible = _occlusion_or_none(finest, reverse, alpha1, alpha2, min_visible)
        if first_visible is None:
            first_visible = visible if visible is not None else torch.ones_like(finest[:, :1])
        levels = list(flow_list[1:]) if len(flow_list) > 1 else list(flow_list)
        if resolution == "level":
            for flow in levels:
                photometric = photometric + level_photometric_loss(target, source, flow, visible, metric) / len(levels)
        else:
            for flow in flow_levels_full_res(flow_list, h, w):
                photometric = photometric + flow_photometric_loss(target, source, flow, visible,
                                                                  metric=metric) / len(levels)
        for level, flow in enumerate(levels):
            smoothness = smoothness + smoothness_weight / (2 ** level) * flow_smoothness(flow, target) / len(levels)
    n = len(sources)
    photometric, smoothness = photometric / n, smoothness / n
    return {"loss": photometric + smoothness, "photometric": photometric, "smoothness": smoothness, "visible": first_visible}


def _occlusion_or_none(finest: torch.Tensor, reverse: torch.Tensor | None, alpha1: float, alpha2: float,
                       min_visible: float) -> torch.Tensor | None:
    """The forward–backward visibility of ``finest`` (None: no check, or too few pixels pass it)."""
    if reverse is None:
        return None
    visible = occlusion_mask(finest.detach(), reverse.detach(), alpha1, alpha2)
    return None if float(visible.mean()) < min_visible else visible


def _weighted_flow_loss(target, sources, flows, reverse_flows, *, smoothness_weight, alpha1, alpha2, min_visible,
                        resolution, metric, level_weights) -> dict[str, torch.Tensor]:
    """:func:`optical_flow_loss` with one weight per output (full resolution first, then the levels)."""
    h, w = target.shape[-2:]
    photometric = target.new_zeros(())
    smoothness = target.new_zeros(())
    first_visible = None
    for source, flow_list, reverse in zip(sources, flows, reverse_flows):
        weights = list(level_weights)[:len(flow_list)] + [0.0] * max(0, len(flow_list) - len(level_weights))
        total = sum(weights)
        if total <= 0:
            raise ValueError(f"flow level weights must have a positive sum, got {list(level_weights)}")
        visible = _occlusion_or_none(flow_list[0], reverse, alpha1, alpha2, min_visible)
        if first_visible is None:
            first_visible = visible if visible is not None else torch.ones_like(flow_list[0][:, :1])
        for index, (flow, weight) in enumerate(zip(flow_list, weights)):
            if weight == 0:
                continue
            if index == 0 or resolution == "input":
                full = flow if flow.shape[-2:] == (h, w) else geometry.resize_flow(flow, h, w)
                term = flow_photometric_loss(target, source, full, visible, metric=metric)
            else:
                term = level_photometric_loss(target, source, flow, visible, metric)
            photometric = photometric + weight / total * term
            smoothness = smoothness + weight / total * smoothness_weight / (2 ** max(index - 1, 0)) * \
                flow_smoothness(flow, target)
    n = len(sources)
    photometric, smoothness = photometric / n, smoothness / n
    return {"loss": photometric + smoothness, "photometric": photometric, "smoothness": smoothness,
            "visible": first_visible}


def distillation_mask(teacher_flow: torch.Tensor, rigid: torch.Tensor, semantic: torch.Tensor, *,
                      consistency_threshold: float = 0.5,
                      dynamic_classes: Sequence[int] = DYNAMIC_TRAIN_IDS) -> dict[str, torch.Tensor]:
    """ΩNet's self-distillation mask M = (Π ∨ C) ∧ B and its parts, each B×1×H×W in {0, 1}.

    ``teacher_flow``, ``rigid`` B×2×H×W pixels (target→source); ``semantic``
    B×H×W trainIds. Π: potentially dynamic class; C: teacher's motion
    probability < ``consistency_threshold`` (ξ); B: the rigid flow stays in
    the image. M = 1 → learn from the teacher, M = 0 → from the rigid flow.
    """
    prior = dynamic_class_mask(semantic, dynamic_classes).unsqueeze(1).to(rigid.dtype)
    probability = motion_probability(teacher_flow, rigid).unsqueeze(1)
    consistent = (probability < consistency_threshold).to(rigid.dtype)
    boundary = inside_image(rigid)
    mask = torch.maximum(prior, consistent) * boundary
    return {"mask": mask, "prior": prior, "consistency": consistent, "boundary": boundary, "probability": probability}


def distillation_loss(student_flows: Sequence[torch.Tensor], teacher_flow: torch.Tensor, rigid: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """L1 between each student level (upsampled to H×W) and the target M·teacher + (1 − M)·rigid (both detached)."""
    h, w = teacher_flow.shape[-2:]
    target = (mask * teacher_flow + (1 - mask) * rigid).detach()
    levels = flow_levels_full_res(student_flows, h, w)
    return sum((flow - target).abs().mean() for flow in levels) / len(levels)
