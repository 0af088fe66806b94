"""Faster inference forms give the same numbers: folded BatchNorm, NHWC warping, copy-free padding, skipped flow."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omeganet_ros.checkpoint import save_checkpoint
from omeganet_ros.engine import SceneEngine
from omeganet_ros.nets import CamNet, DSNet, LegacyDSNet, build_networks
from omeganet_ros.nets.layers import SameConv, correlation_shifts, fold_batch_norms, warp_tf


def _with_statistics(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random non-trivial BatchNorm statistics and β/γ (fresh networks have mean 0, var 1: folding them is trivial)."""
    g = torch.Generator().manual_seed(seed)
    for name, buffer in net.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.2)
        elif name.endswith("running_var"):
            buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("beta") or name.endswith("norm.bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


@pytest.mark.parametrize("cls", [DSNet, LegacyDSNet])
def test_folded_batch_norm_gives_the_same_depth_and_semantics(cls):
    torch.manual_seed(0)
    net = _with_statistics(cls())
    folded = fold_batch_norms(copy.deepcopy(net))
    image = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        a, b = net(image), folded(image)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    for key in ("disp_full", "semantic"):
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key


def test_folded_camnet_pose_and_intrinsics():
    torch.manual_seed(1)
    net = _with_statistics(CamNet(), 1)
    folded = fold_batch_norms(copy.deepcopy(net))
    frames = [torch.rand(1, 3, 128, 160) for _ in range(3)]
    with torch.no_grad():
        a, b = net(*frames), folded(*frames)
    assert torch.allclose(a["pose"], b["pose"], rtol=1e-4, atol=1e-6)
    assert torch.allclose(a["K"], b["K"], rtol=1e-5)


def test_nhwc_warp_is_exact_and_stays_channels_last():
    torch.manual_seed(2)
    features = torch.randn(2, 32, 24, 40)
    flow = torch.randn(2, 2, 24, 40) * 6  # beyond the borders too
    nchw = warp_tf(features, flow)
    nhwc = warp_tf(features.contiguous(memory_format=torch.channels_last), flow)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nchw.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(nchw, nhwc)
    # and the cost volume of consistent layouts equals the mixed one
    reference = torch.randn(2, 32, 24, 40).contiguous(memory_format=torch.channels_last)
    assert torch.equal(correlation_shifts(reference, nchw), correlation_shifts(reference, nhwc))


@pytest.mark.parametrize("dilation", [1, 4])
def test_same_conv_without_a_padded_copy_equals_explicit_tf_padding(dilation):
    torch.manual_seed(3)
    conv = SameConv(8, 6, dilation=dilation, negative_slope=None)
    x = torch.randn(1, 8, 13, 20)
    pad = dilation  # stride 1, 3×3: TensorFlow's SAME pads (k − 1)·d / 2 on each side
    expected = F.conv2d(F.pad(x, (pad,) * 4), conv.conv.weight, conv.conv.bias, dilation=dilation)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    stride2 = SameConv(8, 6, stride=2, negative_slope=None)  # 13 rows: (1, 1); 20 columns: (0, 1), the F.pad path
    expected = F.conv2d(F.pad(x, (0, 1, 1, 1)), stride2.conv.weight, stride2.conv.bias, stride=2)
    assert torch.allclose(stride2(x), expected, atol=1e-6)


def _frames(n=4, size=(128, 64)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


def test_engine_folding_matches_the_unfolded_networks(tmp_path):
    torch.manual_seed(4)
    networks = {name: _with_statistics(net, i) for i, (name, net) in enumerate(build_networks().items())}
    path = save_checkpoint(tmp_path / "stats.pt", networks, input_size=(128, 64))
    frames = _frames()
    engines = [SceneEngine(path, device="cpu", fold_batch_norm=fold) for fold in (False, True)]
    outs = [[e.push(f, float(i)) for i, f in enumerate(frames)][-1] for e in engines]
    np.testing.assert_allclose(outs[0].depth, outs[1].depth, rtol=1e-4)
    np.testing.assert_allclose(outs[0].flow, outs[1].flow, atol=1e-3)
    np.testing.assert_allclose(outs[0].ego_motion, outs[1].ego_motion, atol=1e-5)
    # the engine's own networks stay unfolded (trainable, savable)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in engines[1].networks["dsnet"].modules())


def test_engine_skips_flow_and_motion_when_asked_and_resumes_exactly():
    frames = _frames(5)
    full = SceneEngine("random", device="cpu", size=(128, 64))
    lazy = SceneEngine("random", device="cpu", size=(128, 64), compute_flow=False)
    full_out = [full.push(f, float(i)) for i, f in enumerate(frames)]
    lazy_out = []
    for i, f in enumerate(frames):
        lazy.compute_flow = i >= 3  # frames 0–2 pushed without OFNet, then flow is wanted again
        lazy_out.append(lazy.push(f, float(i)))
    skipped = lazy_out[2]
    assert skipped.flow is None and skipped.motion_probability is None and skipped.motion_mask is None
    assert skipped.rigid_flow is None and "ofnet" not in skipped.timings_ms and "ofnet_encoder" not in skipped.timings_ms
    np.testing.assert_array_equal(skipped.depth, full_out[2].depth)
    np.testing.assert_array_equal(skipped.semantic, full_out[2].semantic)
    np.testing.assert_array_equal(skipped.ego_motion, full_out[2].ego_motion)
    resumed = lazy_out[3]  # frames 2 and 3 encoded for OFNet on demand
    np.testing.assert_array_equal(resumed.flow, full_out[3].flow)
    np.testing.assert_array_equal(resumed.motion_mask, full_out[3].motion_mask)
