"""The training losses on hand-made cases whose answer is known."""
import math

import pytest
import torch

from omeganet_ros import geometry
from omeganet_ros.classes import BUILDING, CAR, IGNORE_ID, ROAD
from omeganet_ros.train import losses

H, W, SHIFT = 32, 48, 3


def textured(h, w, seed=0):
    """A smooth random RGB texture B=1×3×h×w in [0, 1] (textured enough for SSIM and L1)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 4 + 2, w // 4 + 2, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


def shifted_pair():
    """target(u) = source(u + SHIFT): a flow of +SHIFT px (target → source) warps source onto target exactly."""
    big = textured(H, W + SHIFT)
    return big[..., SHIFT:SHIFT + W], big[..., :W]


def test_ssim_is_zero_for_identical_images_and_positive_otherwise():
    img = textured(H, W)
    assert losses.SSIM()(img, img).abs().max() < 1e-5
    assert losses.SSIM()(img, textured(H, W, seed=1)).mean() > 0.05


def test_photometric_loss_is_zero_for_a_perfect_warp():
    target, source = shifted_pair()
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0] = SHIFT
    error = losses.photometric_error(losses.warp(source, flow), target)
    interior = error[..., : W - SHIFT - 1]  # the last columns sample outside the source
    assert interior.max() < 1e-5
    wrong = losses.photometric_error(losses.warp(source, torch.zeros_like(flow)), target)
    assert wrong[..., : W - SHIFT - 1].mean() > 0.02


def test_depth_pose_view_synthesis_is_exact_for_a_plane_with_the_right_depth():
    # Fronto-parallel plane at 10 (relative units), fx = 50: a sideways camera motion of
    # −0.6 gives a flow of +3 px, so the synthesised view equals the target.
    target, source = shifted_pair()
    K = torch.tensor([[[50.0, 0, (W - 1) / 2], [0, 50.0, (H - 1) / 2], [0, 0, 1]]])
    motion = geometry.pose_vec_to_mat(torch.tensor([[-SHIFT * 10.0 / 50.0, 0, 0, 0, 0, 0]]))
    disp_true = torch.full((1, 1, H, W), (0.1 - 0.01) / 9.99)
    assert torch.allclose(geometry.disp_to_depth(disp_true), torch.tensor(10.0), atol=1e-4)
    flow = losses.depth_flow(geometry.disp_to_depth(disp_true), K, motion)
    assert torch.allclose(flow[:, 0], torch.tensor(float(SHIFT)), atol=1e-4)
    assert flow[:, 1].abs().max() < 1e-4

    right = losses.depth_pose_loss(target, [source], [disp_true], K, [motion], automask=False, smoothness_weight=0)
    wrong = losses.depth_pose_loss(target, [source], [disp_true * 0.5], K, [motion], automask=False, smoothness_weight=0)
    # Only the last SHIFT columns (out of view) contribute for the right depth.
    assert right["photometric"] < 0.25 * wrong["photometric"]
    assert right["smoothness"] == 0


def test_depth_loss_at_level_resolution_reaches_displacements_that_full_resolution_misses():
    """``resolution="level"``: each disparity scale against the images area-downsampled to it (K scaled). With the right
    depths and a translation at a fifth of the true one (flow 1.6 px where the truth is 8), the gradient must pull the
    translation toward the truth; at full resolution (monodepth2's "input") the warp's reach is about one pixel."""
    h, w, shift = 64, 96, 8
    K = torch.tensor([[[50.0, 0, (w - 1) / 2], [0, 50.0, (h - 1) / 2], [0, 0, 1]]])
    disps = [torch.full((1, 1, h // 2 ** s, w // 2 ** s), (0.1 - 0.01) / 9.99) for s in range(4)]  # depth 10
    true_tx = -shift * 10.0 / 50.0

    def pulled_toward_truth(resolution: str) -> int:
        count = 0
        for seed in range(10):
            g = torch.Generator().manual_seed(seed)
            big = torch.nn.functional.interpolate(torch.rand(1, 3, h // 2, (w + shift) // 2, generator=g),
                                                  size=(h, w + shift), mode="bilinear", align_corners=False)
            target, source = big[..., shift:shift + w], big[..., :w]
            tx = torch.tensor(0.2 * true_tx, requires_grad=True)
            motion = geometry.pose_vec_to_mat(torch.stack([tx, *torch.zeros(5)])[None])
            loss = losses.depth_pose_loss(target, [source], disps, K, [motion], automask=False, smoothness_weight=0,
                                          resolution=resolution)["loss"]
            grad, = torch.autograd.grad(loss, tx)
            count += float(grad) > 0  # a step toward the truth (tx more negative) lowers the loss
        return count

    assert pulled_toward_truth("level") == 10 and pulled_toward_truth("input") <= 5  # measured: 10 and 3
    # One full-resolution scale is the same either way; an unknown resolution is refused.
    target, source = shifted_pair()
    K = torch.tensor([[[50.0, 0, (W - 1) / 2], [0, 50.0, (H - 1) / 2], [0, 0, 1]]])
    motion = geometry.pose_vec_to_mat(torch.tensor([[-0.5, 0, 0, 0, 0, 0]]))
    disp = torch.rand(1, 1, H, W)
    a, b = (losses.depth_pose_loss(target, [source], [disp], K, [motion], automask=False, resolution=r)["loss"]
            for r in ("input", "level"))
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="resolution"):
        losses.depth_pose_loss(target, [source], [disp], K, [motion], resolution="scale")


def test_minimum_over_sources_picks_the_source_that_explains_each_pixel():
    target, source = shifted_pair()
    good = torch.zeros(1, 2, H, W)
    good[:, 0] = SHIFT
    bad = torch.zeros(1, 2, H, W)
    bad[:, 1] = 5.0
    both, _ = losses.reprojection_loss(target, [source, source], [bad, good], automask=False)
    bad_only, _ = losses.reprojection_loss(target, [source], [bad], automask=False)
    assert both < 0.3 * bad_only
    # mean over the sources (monodepth2's --avg_reprojection): the wrong source's warp counts too
    good_only, _ = losses.reprojection_loss(target, [source], [good], automask=False)
    mean, _ = losses.reprojection_loss(target, [source, source], [bad, good], automask=False, source_reduction="mean")
    torch.testing.assert_close(mean, 0.5 * (bad_only + good_only))
    assert mean > 1.5 * both
    with pytest.raises(ValueError, match="source_reduction must be 'min' or 'mean'"):
        losses.reprojection_loss(target, [source], [good], source_reduction="median")


def test_automask_selects_static_pixels():
    # Left half: the source equals the target (nothing changed between frames, e.g. an object
    # moving with the camera) although the camera "moved"; right half: the scene moved by SHIFT.
    target, shifted_source = shifted_pair()
    source = target.clone()
    source[..., W // 2:] = shifted_source[..., W // 2:]
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0] = SHIFT
    torch.manual_seed(0)
    _, kept = losses.reprojection_loss(target, [source], [flow], automask=True)
    assert kept[..., 2 : W // 2 - SHIFT - 2].sum() == 0  # static pixels are masked out
    assert kept[..., W // 2 + 2 : W - SHIFT - 2].min() == 1  # explained motion is kept


def test_smoothness_is_zero_for_constant_disparity_and_edge_aware():
    img = textured(H, W)
    assert losses.disparity_smoothness(torch.full((1, 1, H, W), 0.3), img) == 0
    ramp = torch.linspace(0.1, 0.9, W).expand(1, 1, H, W)
    assert losses.disparity_smoothness(ramp, img) > 0
    # An image edge where the disparity jumps is cheaper than a flat image.
    step = torch.zeros(1, 1, H, W) + 0.2
    step[..., W // 2:] = 0.8
    edge_img = torch.zeros(1, 3, H, W)
    edge_img[..., W // 2:] = 1.0
    assert losses.disparity_smoothness(step, edge_img) < 0.5 * losses.disparity_smoothness(step, torch.zeros(1, 3, H, W))


def test_semantic_loss_ignores_unlabelled_pixels():
    logits = torch.zeros(1, 19, 4, 4, requires_grad=True)
    with torch.no_grad():
        logits[:, ROAD] = 10.0
    labels = torch.full((1, 4, 4), ROAD)
    labels[:, :2] = IGNORE_ID
    assert losses.semantic_loss(logits, labels) < 1e-3
    labels[:, 2:] = CAR
    assert losses.semantic_loss(logits, labels) > 5
    none = losses.semantic_loss(logits, torch.full((1, 4, 4), IGNORE_ID))
    assert none == 0 and math.isfinite(none.item())
    none.backward()


def test_semantic_loss_enet_weights_favour_the_rare_class():
    # 1 pole pixel among 63 road pixels, the head sure of road everywhere: the plain mean barely sees the
    # misclassified pole; ENet's weights (1 / ln(1.02 + share)) make it count about 8× more than a road pixel.
    pole = 5
    logits = torch.zeros(1, 19, 8, 8, requires_grad=True)
    with torch.no_grad():
        logits[:, ROAD] = 5.0
    labels = torch.full((1, 8, 8), ROAD)
    labels[0, 0, 0] = pole
    plain = losses.semantic_loss(logits, labels)
    enet = losses.semantic_loss(logits, labels, class_weights="enet")
    assert enet > 4 * plain
    (g_plain,) = torch.autograd.grad(losses.semantic_loss(logits, labels), logits)
    (g_enet,) = torch.autograd.grad(losses.semantic_loss(logits, labels, class_weights="enet"), logits)
    share = lambda g: float(g[0, :, 0, 0].abs().sum() / g.abs().sum())  # the pole pixel's share of the gradient
    assert share(g_enet) > 0.5 > share(g_plain)
    # equal class shares: the weights are equal and the loss is the plain one
    labels[0, :4] = pole
    assert torch.allclose(losses.semantic_loss(logits, labels, class_weights="enet"), losses.semantic_loss(logits, labels))
    with pytest.raises(ValueError, match="class_weights"):
        losses.semantic_loss(logits, labels, class_weights="median")


def test_forward_backward_check_finds_the_occluded_background():
    # A square moves 4 px right between A and B over a static background: the 4 background
    # columns right of the square in A are covered in B, i.e. occluded.
    fw = torch.zeros(1, 2, H, W)
    bw = torch.zeros(1, 2, H, W)
    y0, y1, x0, x1, d = 10, 20, 10, 20, 4
    fw[:, 0, y0:y1, x0:x1] = d
    bw[:, 0, y0:y1, x0 + d:x1 + d] = -d
    visible = losses.occlusion_mask(fw, bw)[0, 0]
    assert visible[y0 + 1:y1 - 1, x1 + 1:x1 + d - 1].sum() == 0  # occluded background
    assert visible[y0:y1, x0:x1].min() == 1  # the square itself
    assert visible[:y0 - 2].min() == 1 and visible[:, : x0 - 1].min() == 1  # untouched background
    # The bound grows with the flow magnitude (α1 term): no false alarm for a large consistent flow.
    big = torch.full((1, 2, H, W), 0.0)
    big[:, 0] = 6.0
    assert losses.occlusion_mask(big, -big)[..., : W - 7].min() == 1


def test_flow_loss_prefers_the_true_flow():
    target, source = shifted_pair()
    true = torch.zeros(1, 2, H, W)
    true[:, 0] = SHIFT
    good = losses.optical_flow_loss(target, [source], [[true]], [-true], smoothness_weight=0.02)
    bad = losses.optical_flow_loss(target, [source], [[torch.zeros_like(true)]], [torch.zeros_like(true)])
    assert good["photometric"] < 0.2 * bad["photometric"]
    assert good["smoothness"] == 0


def test_distillation_mask_on_a_constructed_case():
    # Four column bands: static & consistent | static & inconsistent | car & inconsistent | leaves the image.
    h, w = 8, 40
    rigid = torch.zeros(1, 2, h, w)
    rigid[:, 0] = 1.0
    teacher = rigid.clone()
    semantic = torch.full((1, h, w), BUILDING)
    teacher[:, 0, :, 10:20] = -1.0  # opposite direction on a building: the teacher is wrong
    teacher[:, 0, :, 20:30] = -1.0  # …and on a car: the car moves
    semantic[:, :, 20:30] = CAR
    rigid[:, 0, :, 30:] = 50.0  # rigid flow leaves the image
    teacher[:, 0, :, 30:] = 50.0
    parts = losses.distillation_mask(teacher, rigid, semantic)
    mask = parts["mask"][0, 0]
    assert mask[:, :10].min() == 1  # consistent → teacher
    assert mask[:, 10:20].max() == 0  # static, inconsistent → rigid
    assert mask[:, 20:30].min() == 1  # dynamic class → teacher
    assert mask[:, 30:].max() == 0  # out of the image → rigid
    assert parts["prior"][0, 0, :, 20:30].min() == 1 and parts["prior"][0, 0, :, :20].max() == 0
    assert parts["boundary"][0, 0, :, 30:].max() == 0

    student_right = [(mask * teacher + (1 - mask) * rigid)]
    assert losses.distillation_loss(student_right, teacher, rigid, parts["mask"]) == 0
    assert losses.distillation_loss([teacher], teacher, rigid, parts["mask"]) > 0


def test_reprojection_loss_rejects_mismatched_inputs():
    target, source = shifted_pair()
    with pytest.raises(ValueError, match="one flow per source"):
        losses.reprojection_loss(target, [source, source], [torch.zeros(1, 2, H, W)])


def test_flow_loss_skips_an_occlusion_mask_that_would_hide_most_pixels():
    target, source = shifted_pair()
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0] = SHIFT
    inconsistent = torch.full((1, 2, H, W), 5.0)  # a reverse flow that contradicts the forward one everywhere
    masked = losses.optical_flow_loss(target, [source], [[torch.zeros_like(flow)]], [inconsistent])
    assert masked["photometric"] == 0  # every pixel judged occluded
    guarded = losses.optical_flow_loss(target, [source], [[torch.zeros_like(flow)]], [inconsistent], min_visible=0.5)
    assert guarded["photometric"] > 0.02


def _smooth_shifted_pair(shift: int):
    """A low-frequency image and a copy shifted by ``shift`` px: target(u) = source(u + shift)."""
    u = torch.arange(W + shift, dtype=torch.float32)
    v = torch.arange(H, dtype=torch.float32)[:, None]
    big = 0.5 + 0.4 * torch.sin(u / 5.0) * torch.cos(v / 7.0)
    big = big.expand(1, 3, H, W + shift).clone()
    return big[..., shift:shift + W], big[..., :W]


def test_level_photometric_loss_compares_images_at_the_levels_resolution():
    target, source = _smooth_shifted_pair(8)
    coarse = torch.zeros(1, 2, H // 4, W // 4)
    right = coarse.clone()
    right[:, 0] = 2.0  # 8 px at full resolution = 2 px at 1/4
    assert losses.level_photometric_loss(target, source, right) < 0.25 * losses.level_photometric_loss(target, source, coarse)
    # The gradient at zero flow points towards the true displacement (+u) at the coarse level.
    start = coarse.clone().requires_grad_(True)
    losses.level_photometric_loss(target, source, start).backward()
    assert start.grad[:, 0].sum() < 0
    # A full-resolution pixel that is occluded hides the whole coarse pixel around it.
    visible = torch.zeros(1, 1, H, W)
    visible[..., :4, :4] = 1  # exactly one 4×4 footprint fully visible
    visible[..., 5, 5] = 1  # a partly visible footprint
    one_pixel = losses.level_photometric_loss(target, source, coarse, visible)
    small = [torch.nn.functional.interpolate(x, size=coarse.shape[-2:], mode="area") for x in (target, source)]
    assert torch.isclose(one_pixel, losses.photometric_error(small[1], small[0])[0, 0, 0, 0])
    visible[..., :4, :4] = 0
    assert losses.level_photometric_loss(target, source, coarse, visible) == 0  # nothing fully visible
    # Tiny levels (no 3×3 SSIM window) fall back to L1.
    tiny = torch.zeros(1, 2, 2, 3)
    assert losses.level_photometric_loss(target, source, tiny) > 0


def test_flow_loss_resolution_option():
    target, source = shifted_pair()
    flows = [[torch.zeros(1, 2, H, W), torch.zeros(1, 2, H // 4, W // 4), torch.zeros(1, 2, H // 8, W // 8)]]
    level = losses.optical_flow_loss(target, [source], flows, [None], resolution="level")
    full = losses.optical_flow_loss(target, [source], flows, [None], resolution="input")
    assert level["photometric"] != full["photometric"]
    with pytest.raises(ValueError, match="resolution"):
        losses.optical_flow_loss(target, [source], flows, [None], resolution="half")


def test_census_loss_ignores_brightness_and_contrast_but_sees_misalignment():
    target, source = shifted_pair()
    true = torch.zeros(1, 2, H, W)
    true[:, 0] = SHIFT
    warped = losses.warp(source, true)
    relit = target + 0.1  # the same scene, brighter
    census = {name: losses.census_error(x, target).mean()
              for name, x in (("same", target), ("aligned", warped), ("relit", relit), ("unwarped", source))}
    assert census["relit"] == pytest.approx(float(census["same"]), abs=1e-6)  # blind to a brightness change
    assert losses.photometric_error(relit, target).mean() > losses.photometric_error(target, target).mean() + 0.01
    assert census["aligned"] < 0.3 * census["unwarped"]  # but sees misalignment
    with pytest.raises(ValueError, match="photometric metric"):
        losses.photometric_error(source, target, metric="ncc")
    # the flow loss prefers the true flow under the census metric too
    good = losses.optical_flow_loss(target, [source], [[true]], [None], metric="census")
    bad = losses.optical_flow_loss(target, [source], [[torch.zeros_like(true)]], [None], metric="census")
    assert good["photometric"] < 0.3 * bad["photometric"]


def test_level_weights_put_the_full_resolution_output_in_the_loss():
    target, source = shifted_pair()
    flows = [torch.zeros(1, 2, H, W, requires_grad=True), torch.zeros(1, 2, H // 4, W // 4, requires_grad=True),
             torch.zeros(1, 2, H // 8, W // 8, requires_grad=True)]
    losses.optical_flow_loss(target, [source], [flows], [None])["loss"].backward()
    assert flows[0].grad is None and flows[1].grad is not None  # the default: levels only
    for f in flows:
        f.grad = None
    losses.optical_flow_loss(target, [source], [flows], [None], level_weights=[1.0, 1.0])["loss"].backward()
    assert flows[0].grad.abs().sum() > 0 and flows[1].grad.abs().sum() > 0
    assert flows[2].grad is None  # weight 0 (missing): no gradient from the coarsest level
    # the full-resolution output learns the true displacement
    assert flows[0].grad[:, 0].sum() < 0
    with pytest.raises(ValueError, match="positive sum"):
        losses.optical_flow_loss(target, [source], [flows], [None], level_weights=[0.0, 0.0, 0.0])


def test_depth_loss_leaves_ignored_pixels_out_of_the_photometric_term():
    """``ignore`` (``loss.ignore_dynamic``): a region the rigid warp cannot explain (a moving object) neither adds
    to the photometric term nor pulls on the disparity under it; at a coarser level the region is pooled."""
    target, source = shifted_pair()
    K = torch.tensor([[[50.0, 0, (W - 1) / 2], [0, 50.0, (H - 1) / 2], [0, 0, 1]]])
    motion = geometry.pose_vec_to_mat(torch.tensor([[-SHIFT * 10.0 / 50.0, 0, 0, 0, 0, 0]]))
    moving = target.clone()
    moving[..., 8:20, 10:26] = 1.0 - moving[..., 8:20, 10:26]
    ignore = torch.zeros(1, 1, H, W, dtype=torch.bool)
    ignore[..., 7:21, 9:27] = True  # one pixel wider: SSIM reads a 3×3 window

    def loss(image, disp_scale=1.0, **kwargs):
        disp = torch.full((1, 1, H, W), (0.1 - 0.01) / 9.99 * disp_scale, requires_grad=True)
        out = losses.depth_pose_loss(image, [source], [disp], K, [motion], automask=False, smoothness_weight=0,
                                     **kwargs)
        out["photometric"].backward()
        return float(out["photometric"]), disp.grad[0, 0]

    clean, _ = loss(target)
    plain, plain_grad = loss(moving)
    masked, masked_grad = loss(moving, ignore=ignore)
    assert plain > 5 * clean
    assert masked < 1.5 * clean
    assert plain_grad[10:18, 12:24].abs().sum() > 0
    assert masked_grad[10:18, 12:24].abs().sum() == 0
    # a wrong depth is still seen outside the ignored region
    assert loss(moving, disp_scale=0.5, ignore=ignore)[0] > 3 * masked

    disps = [torch.full((1, 1, H // 2 ** s, W // 2 ** s), (0.1 - 0.01) / 9.99) for s in range(2)]
    level = dict(automask=False, smoothness_weight=0, resolution="level")
    level_plain = losses.depth_pose_loss(moving, [source], disps, K, [motion], **level)["photometric"]
    level_masked = losses.depth_pose_loss(moving, [source], disps, K, [motion], ignore=ignore, **level)["photometric"]
    assert level_masked < 0.5 * level_plain
