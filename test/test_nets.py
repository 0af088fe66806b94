"""ΩNet networks, both architectures (the authors' and the legacy ones): shapes, value ranges, gradients,
parameter counts, determinism, warping and correlation. Equality with the authors' TensorFlow graph is
proven by test_official_equivalence.py; their conventions (TF-legacy resize, SAME padding, tf_warp) here."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omeganet_ros.nets import LegacyCamNet, LegacyPyramidEncoder, Monodepth2ResNet18, PyramidEncoder, build_networks
from omeganet_ros.nets.layers import (correlation, correlation_shifts, correlation_unfold, pad_to_multiple,
                                      resize_bilinear_tf_legacy, resize_flow_align_corners, tf_same_padding,
                                      upsample_flow, warp, warp_tf)

# (width, height): multiples of 64 and not, and an odd size.
SIZES = [(320, 96), (416, 128), (640, 192), (333, 111)]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)


@pytest.fixture(scope="module", params=["official", "legacy"])
def nets(request):
    torch.manual_seed(0)
    return {name: net.eval() for name, net in build_networks(architecture=request.param).items()}


def is_official(nets):
    return type(nets["dsnet"]).__name__ == "DSNet"


def frames(width, height, batch=1):
    g = torch.Generator().manual_seed(width * 1000 + height)
    return [torch.rand(batch, 3, height, width, generator=g) for _ in range(3)]


def ceil_div(a, b):
    return -(-a // b)


def flatten_outputs(out):
    tensors = []
    for value in out.values():
        tensors += value if isinstance(value, list) else [value]
    return tensors


@pytest.mark.parametrize("width,height", SIZES)
def test_dsnet_shapes_and_ranges(nets, width, height):
    _, cur, _ = frames(width, height)
    with torch.no_grad():
        out = nets["dsnet"](cur)
    assert len(out["disp"]) == 5
    for level, disp in enumerate(out["disp"], start=1):
        assert disp.shape == (1, 1, ceil_div(height, 2 ** level), ceil_div(width, 2 ** level))
        if is_official(nets):  # divided by its mean (the authors' spatial_normalize)
            assert disp.min() > 0 and float(disp.mean()) == pytest.approx(1.0, rel=1e-5)
        else:
            assert disp.min() >= 0 and disp.max() <= 1
    assert out["disp_full"].shape == (1, 1, height, width)
    if is_official(nets):
        assert out["disp_full"].min() > 0
        assert all(d.min() >= 0.01 for d in out["disp_raw"])  # 10·sigmoid + 0.01, summed over levels
    else:
        assert out["disp_full"].min() >= 0 and out["disp_full"].max() <= 1
    assert out["semantic"].shape == (1, 19, height, width)
    assert torch.isfinite(out["semantic"]).all()


@pytest.mark.parametrize("width,height", SIZES)
def test_camnet_motion_and_plausible_intrinsics(nets, width, height):
    prev, cur, nxt = frames(width, height, batch=2)
    with torch.no_grad():
        out = nets["camnet"](prev, cur, nxt)
    assert out["motion"].shape == (2, 2, 6)
    assert torch.isfinite(out["motion"]).all()
    K = out["K"]
    assert K.shape == (2, 3, 3)
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    assert (fx > 0.1 * width).all() and (fx < 10 * width).all()
    assert (fy > 0.1 * height).all() and (fy < 10 * height).all()
    assert (cx > 0).all() and (cx < width).all() and (cy > 0).all() and (cy < height).all()
    assert torch.equal(K[:, 2], torch.tensor([[0.0, 0.0, 1.0]] * 2))
    assert (K[:, 0, 1] == 0).all() and (K[:, 1, 0] == 0).all()


def test_reversal_symmetric_camnet_swaps_its_motions_exactly_on_a_reversed_triplet():
    from omeganet_ros import geometry
    from omeganet_ros.nets import CamNet

    torch.manual_seed(3)
    plain = CamNet().eval()
    symmetric = CamNet(reversal_symmetric=True).eval()
    symmetric.load_state_dict(plain.state_dict())  # the same weights: the option adds no parameter
    prev, cur, nxt = frames(320, 96, batch=2)
    with torch.no_grad():
        out, rev = symmetric(prev, cur, nxt), symmetric(nxt, cur, prev)
        raw, raw_rev = plain(prev, cur, nxt), plain(nxt, cur, prev)
    # the authors' poses (t→t−1, t→t+1) of the reversed triplet are the forward one's, swapped
    torch.testing.assert_close(rev["pose"], out["pose"].flip(1))
    torch.testing.assert_close(out["pose"], 0.5 * (raw["pose"] + raw_rev["pose"].flip(1)))
    torch.testing.assert_close(rev["K"], out["K"])
    # our motions: reversed t→t+1 = inverse of forward t−1→t, so the rotation (yaw) changes sign
    inverse = geometry.invert_rigid(geometry.pose_vec_to_mat(out["motion"][:, 0]))
    torch.testing.assert_close(geometry.pose_vec_to_mat(rev["motion"][:, 1]), inverse, atol=1e-5, rtol=1e-4)
    assert torch.allclose(rev["motion"][:, 1, 3:], -out["motion"][:, 0, 3:], atol=1e-6)
    # the authors' CamNet has no such property at random initialisation (what the test would catch)
    assert not torch.allclose(raw_rev["pose"], raw["pose"].flip(1), atol=1e-6)


def test_still_subtracted_camnet_gives_zero_on_a_still_triplet_and_cancels_appearance():
    from omeganet_ros.nets import CamNet

    torch.manual_seed(4)
    plain = CamNet().eval()
    prev, cur, nxt = frames(320, 96, batch=2)
    for symmetric in (False, True):
        net = CamNet(reversal_symmetric=symmetric, still_subtracted=True).eval()
        net.load_state_dict(plain.state_dict())
        with torch.no_grad():
            still = net(cur, cur, cur)
            moving = net(prev, cur, nxt)
            reference = CamNet(reversal_symmetric=symmetric).eval()
            reference.load_state_dict(plain.state_dict())
            expected = reference(prev, cur, nxt)["pose"] - reference(cur, cur, cur)["pose"]
            plain_still = plain(cur, cur, cur)
        assert torch.equal(still["motion"], torch.zeros_like(still["motion"]))
        torch.testing.assert_close(moving["pose"], expected)
        torch.testing.assert_close(moving["K"], reference(prev, cur, nxt)["K"])
    assert plain_still["motion"].abs().max() > 1e-5  # the authors' CamNet moves on a still triplet


@pytest.mark.parametrize("width,height", SIZES)
def test_ofnet_shapes(nets, width, height):
    prev, cur, nxt = frames(width, height)
    with torch.no_grad():
        out = nets["ofnet"](prev, cur, nxt)
    for key in ("flow_fw", "flow_bw"):
        flows = out[key]
        assert len(flows) == 6
        assert flows[0].shape == (1, 2, height, width)
        for k, flow in enumerate(flows[1:]):
            level = k + 2
            assert flow.shape == (1, 2, ceil_div(height, 2 ** level), ceil_div(width, 2 ** level))
        assert all(torch.isfinite(f).all() for f in flows)


def test_ofnet_full_resolution_flow_is_upsampled_finest_level(nets):
    prev, cur, nxt = frames(320, 128)
    with torch.no_grad():
        out = nets["ofnet"](prev, cur, nxt)
    # Level 2 (1/4) upsampled ×4 in size and magnitude gives the full-resolution flow.
    if is_official(nets):  # SelFlow's flow_resize: align_corners=True
        assert torch.allclose(out["flow_fw"][0], resize_flow_align_corners(out["flow_fw"][1], (128, 320)), atol=1e-5)
    else:
        assert torch.allclose(out["flow_fw"][0], upsample_flow(out["flow_fw"][1], 4), atol=1e-5)


def test_ofnet_forward_only_matches_full(nets):
    prev, cur, nxt = frames(192, 128)
    with torch.no_grad():
        full = nets["ofnet"](prev, cur, nxt)
        fw_only = nets["ofnet"](prev, cur, nxt, backward=False)
    assert "flow_bw" not in fw_only
    for a, b in zip(full["flow_fw"], fw_only["flow_fw"]):
        assert torch.allclose(a, b, atol=1e-4)


def test_encode_decode_equals_forward(nets):
    prev, cur, nxt = frames(256, 128)
    with torch.no_grad():
        cam = nets["camnet"]
        direct = cam(prev, cur, nxt)
        cached = cam.decode(cam.encode(prev), cam.encode(cur), cam.encode(nxt), 128, 256)
        assert torch.allclose(direct["motion"], cached["motion"], atol=1e-5)
        assert torch.allclose(direct["K"], cached["K"], atol=1e-3)
        of = nets["ofnet"]
        direct = of(prev, cur, nxt)
        cached = of.decode(*(of.encode(f) for f in (prev, cur, nxt)), 128, 256)
        assert torch.allclose(direct["flow_fw"][0], cached["flow_fw"][0], atol=1e-4)


def test_yardstick_shapes():
    net = Monodepth2ResNet18().eval()
    with torch.no_grad():
        out = net(frames(333, 111)[0])
    assert [tuple(d.shape[-2:]) for d in out["disp"]] == [(111, 333), (56, 167), (28, 84), (14, 42)]
    assert out["disp_full"].shape == (1, 1, 111, 333)
    assert out["disp_full"].min() >= 0 and out["disp_full"].max() <= 1


@pytest.mark.parametrize("encoder", [PyramidEncoder, LegacyPyramidEncoder])
def test_pyramid_encoder_levels(encoder):
    feats = encoder()(torch.rand(1, 3, 111, 333))
    assert [f.shape[1] for f in feats] == [16, 32, 64, 128, 256]
    assert [tuple(f.shape[-2:]) for f in feats] == [(56, 167), (28, 84), (14, 42), (7, 21), (4, 11)]


def _call(name, net, prev, cur, nxt):
    return net(cur) if name in ("dsnet", "yardstick") else net(prev, cur, nxt)


@pytest.mark.parametrize("architecture", ["official", "legacy"])
@pytest.mark.parametrize("name", ["dsnet", "camnet", "ofnet"])
def test_gradients_reach_every_parameter(name, architecture):
    net = build_networks(architecture=architecture)[name].train()
    prev, cur, nxt = frames(128, 128, batch=2)
    loss = sum(t.float().sum() for t in flatten_outputs(_call(name, net, prev, cur, nxt)))
    loss.backward()
    # The authors' CameraNet holds a 1/32 encoder level it never uses (kept: it is in their release).
    unused = "encoder.levels.4." if (name, architecture) == ("camnet", "official") else None
    missing = [n for n, p in net.named_parameters() if p.grad is None and not (unused and n.startswith(unused))]
    assert not missing, f"{name}: no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("name,target", [("dsnet", 1.9e6), ("camnet", 2.7e6), ("ofnet", 4.8e6)])
def test_parameter_counts_near_paper(nets, name, target):
    count = sum(p.numel() for p in nets[name].parameters())
    assert abs(count - target) / target < 0.25, f"{name}: {count} parameters, paper ≈ {target:.0f}"


@pytest.mark.parametrize("name", ["dsnet", "camnet", "ofnet"])
def test_eval_mode_is_deterministic(nets, name):
    prev, cur, nxt = frames(192, 64)
    with torch.no_grad():
        a = flatten_outputs(_call(name, nets[name], prev, cur, nxt))
        b = flatten_outputs(_call(name, nets[name], prev, cur, nxt))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["dsnet", "camnet", "ofnet"])
def test_bf16_autocast_runs_and_stays_close(nets, name):
    prev, cur, nxt = frames(256, 128)
    with torch.no_grad():
        ref = flatten_outputs(_call(name, nets[name], prev, cur, nxt))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = flatten_outputs(_call(name, nets[name], prev, cur, nxt))
    for r, l in zip(ref, low):
        assert l.shape == r.shape and l.dtype == torch.float32 and torch.isfinite(l).all()
        scale = max(float(r.abs().max()), 1.0)
        assert float((r - l.float()).abs().max()) < 0.05 * scale


@pytest.mark.parametrize("name", ["dsnet", "camnet", "ofnet"])
def test_whole_graph_capture_for_torch_compile(nets, name):
    """fullgraph=True fails on any graph break (data-dependent Python control flow)."""
    torch._dynamo.reset()
    net = nets[name]
    prev, cur, nxt = frames(128, 64)
    if name == "dsnet":
        compiled = torch.compile(lambda x: net(x), fullgraph=True, backend="eager")
    else:
        compiled = torch.compile(lambda p, c, n: net(p, c, n), fullgraph=True, backend="eager")
    with torch.no_grad():
        got = flatten_outputs(_call(name, compiled, prev, cur, nxt))
        ref = flatten_outputs(_call(name, net, prev, cur, nxt))
    # The captured graph may run some operations in another order (float32 rounding): OFNet's full-resolution
    # flow differed by 1.1e-5 px on an AMD EPYC (max |flow| 0.08), 0 elsewhere; a wrong graph differs by far more.
    assert all(torch.allclose(g, r, atol=1e-4) for g, r in zip(got, ref))


@pytest.mark.parametrize("name", ["dsnet", "camnet", "ofnet"])
def test_bad_inputs_raise_value_error(nets, name):
    net = nets[name]
    good = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="B×3×H×W"):
        _call(name, net, good, torch.rand(1, 1, 64, 64), good)
    with pytest.raises(ValueError, match="at least 64"):
        small = torch.rand(1, 3, 32, 64)
        _call(name, net, small, small, small)
    with pytest.raises(ValueError, match="float"):
        _call(name, net, good, torch.zeros(1, 3, 64, 64, dtype=torch.uint8), good)
    if name != "dsnet":
        with pytest.raises(ValueError, match="same shape"):
            net(good, good, torch.rand(1, 3, 64, 128))


def test_warp_with_integer_flow_recovers_shifted_image():
    image = torch.rand(1, 3, 40, 60)
    shifted = torch.roll(image, shifts=(2, 5), dims=(2, 3))  # content moved down 2, right 5
    # The flow from image to shifted is (+5, +2): warping shifted by it brings back image.
    flow = torch.tensor([5.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 40, 60)
    back = warp(shifted, flow)
    assert torch.allclose(back[..., :-2, :-5], image[..., :-2, :-5], atol=1e-5)
    # Outside the image the warp reads zeros.
    assert torch.all(warp(image, flow)[..., -1, :] == 0)


def test_warp_subpixel_flow_is_bilinear():
    ramp = torch.arange(30.0).view(1, 1, 1, 30).expand(1, 1, 10, 30)
    flow = torch.zeros(1, 2, 10, 30)
    flow[:, 0] = 0.25
    out = warp(ramp, flow)
    assert torch.allclose(out[..., :-1], ramp[..., :-1] + 0.25, atol=1e-4)


def test_correlation_peaks_at_the_true_displacement():
    ref = F.normalize(torch.randn(1, 8, 20, 30), dim=1)  # unit norm: the self-product is the unique maximum
    target = torch.roll(ref, shifts=(-1, 3), dims=(2, 3))  # ref[y, x] == target[y - 1, x + 3]
    cost = correlation(ref, target, 4)
    assert cost.shape == (1, 81, 20, 30)
    best = cost[..., 6:-6, 6:-6].argmax(dim=1)
    dy, dx = -1, 3
    assert torch.all(best == (dy + 4) * 9 + (dx + 4))
    assert torch.allclose(cost[:, 40], (ref * target).mean(dim=1))


def test_correlation_implementations_agree():
    a, b = torch.randn(2, 16, 12, 17), torch.randn(2, 16, 12, 17)
    assert torch.allclose(correlation_shifts(a, b), correlation_unfold(a, b), atol=1e-5)
    compiled = torch.compile(correlation, fullgraph=True, backend="eager")  # takes the unfold path
    assert torch.allclose(compiled(a, b), correlation_shifts(a, b), atol=1e-5)


def test_upsample_flow_scales_magnitude():
    flow = torch.ones(1, 2, 4, 5) * 1.5
    up = upsample_flow(flow, 4)
    assert up.shape == (1, 2, 16, 20) and torch.allclose(up, torch.full_like(up, 6.0))


def test_pad_to_multiple_is_bottom_right_replicate():
    x = torch.rand(1, 3, 70, 100)
    y = pad_to_multiple(x, 64)
    assert y.shape == (1, 3, 128, 128)
    assert torch.equal(y[..., :70, :100], x)
    assert torch.equal(y[..., 127, 99], x[..., 69, 99])
    assert pad_to_multiple(y, 64) is y


class _WarpCorrelate(torch.nn.Module):
    def forward(self, reference, target, flow):
        return correlation(reference, warp(target, flow))


def test_warp_and_correlation_export_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("onnx", reason="onnx not installed")
    ref, target, flow = torch.randn(1, 8, 12, 20), torch.randn(1, 8, 12, 20), 2 * torch.randn(1, 2, 12, 20)
    path = tmp_path / "warp_corr.onnx"
    torch.onnx.export(_WarpCorrelate(), (ref, target, flow), str(path), opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, (ref.numpy(), target.numpy(), flow.numpy()))))[0]
    assert got.shape == (1, 81, 12, 20)
    assert abs(got - _WarpCorrelate()(ref, target, flow).numpy()).max() < 1e-4


def test_camnet_pose_head_slope_keeps_switched_off_units_learning():
    # With ReLUs (slope 0, the default) a unit whose pre-activation is negative for every input
    # passes no gradient ("dies"); a negative slope keeps one. The slope is part of the architecture.
    prev, cur, nxt = frames(192, 64)
    grads = {}
    for slope in (0.0, 0.1):
        torch.manual_seed(0)
        net = LegacyCamNet(pose_negative_slope=slope)
        first = net.pose_convs[0]
        with torch.no_grad():
            first.bias.fill_(-1e3)  # every unit of the first layer switched off
        net(prev, cur, nxt)["motion"].abs().sum().backward()
        grads[slope] = float(first.weight.grad.abs().sum())
    assert grads[0.0] == 0 and grads[0.1] > 0
    from omeganet_ros.checkpoint import describe_architecture
    assert describe_architecture({"camnet": LegacyCamNet(pose_negative_slope=0.1)})["camnet"]["kwargs"]["pose_negative_slope"] == 0.1


def test_official_networks_hold_the_authors_9397192_values():
    # The authors' graph saves 381 variables, 9,397,192 values at any size: parameters + BatchNorm statistics.
    values = variables = 0
    for net in build_networks(architecture="official").values():
        for name, tensor in net.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                values += tensor.numel()
                variables += 1
    assert (variables, values) == (381, 9_397_192)


def test_tf_legacy_resize_reads_source_at_dst_times_in_over_out():
    # tf.image.resize_bilinear (align_corners=False, no half-pixel centres): src = dst·in/out.
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 2, 4)
    up = resize_bilinear_tf_legacy(ramp, (2, 8))
    assert torch.allclose(up[0, 0, 0], torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.0]))  # the last pixel clamps
    down = resize_bilinear_tf_legacy(torch.arange(8.0).view(1, 1, 1, 8), (1, 3))
    assert torch.allclose(down[0, 0, 0], torch.tensor([0, 8 / 3, 16 / 3]))


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert tf_same_padding(192, 3, 2, 1) == (0, 1)   # even size, stride 2: 0 before, 1 after
    assert tf_same_padding(111, 3, 2, 1) == (1, 1)
    assert tf_same_padding(40, 3, 1, 16) == (16, 16)


def test_warp_tf_keeps_selflows_quirks():
    image = torch.arange(1.0, 13.0).view(1, 1, 3, 4)
    zero = torch.zeros(1, 2, 3, 4)
    out = warp_tf(image, zero)
    # Zero flow: the clipped corner of the last row and column gets zero weight.
    assert torch.equal(out[0, 0, :2, :3], image[0, 0, :2, :3])
    assert torch.all(out[0, 0, -1] == 0) and torch.all(out[0, 0, :, -1] == 0)
    # x = −0.5 truncates to 0: extrapolation 1.5·I[0] − 0.5·I[1], not a blend with zeros.
    left = zero.clone()
    left[:, 0] = -0.5
    assert float(warp_tf(image, left)[0, 0, 0, 0]) == pytest.approx(1.5 * 1 - 0.5 * 2)


def test_official_networks_start_as_tensorflow_layers_do():
    """Glorot-uniform weights and zero biases (tf.contrib.layers / slim defaults), not PyTorch's smaller init."""
    from omeganet_ros.nets import build_networks

    torch.manual_seed(0)
    official = build_networks(architecture="official")
    legacy = build_networks(architecture="legacy")
    convs = [m for m in official["ofnet"].modules() if isinstance(m, torch.nn.Conv2d) and m.weight.numel() > 5000]
    assert convs
    for conv in convs:
        fan_in = conv.weight.shape[1] * conv.weight[0, 0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        assert float(conv.weight.detach().std()) == pytest.approx((2.0 / (fan_in + fan_out)) ** 0.5, rel=0.1)
        assert conv.bias is None or float(conv.bias.abs().max()) == 0.0
    legacy_conv = next(m for m in legacy["ofnet"].modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None)
    assert float(legacy_conv.bias.abs().max()) > 0  # legacy networks keep PyTorch's default init
