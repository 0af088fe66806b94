"""Inference backends (omeganet_ros.backends): exported per-frame graphs match PyTorch fp32, the export cache."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from omeganet_ros import backends
from omeganet_ros.backends import cache as graph_cache
from omeganet_ros.backends import output_differences
from omeganet_ros.engine import SceneEngine, cpu_has_fast_bf16
from omeganet_ros.nets.layers import correlation_matmul, correlation_shifts

SIZE = (128, 64)
INSTALLED = backends.available_backends()
# PyTorch fp32 vs a backend in fp32, per output of SceneOutputs (random weights, 128×64). The motion probability
# compares flow with rigid flow relative to their sizes: near-zero random-weight flows amplify 1e-5 px into ~3e-3.
FP32_TOLERANCE = {"depth_rel_max": 1e-4, "flow_px_max": 1e-3, "rigid_flow_px_max": 1e-3, "motion_probability_max": 2e-2,
                  "ego_translation_max": 1e-5, "ego_rotation_deg": 1e-3, "intrinsics_px_max": 1e-3}


def _needs(backend):
    return pytest.mark.skipif(backend not in INSTALLED,
                              reason=f"{backend} is not installed (pip install 'omeganet_ros[{backend}]')")


def _frames(n, size=SIZE, seed=0):
    """A camera panning over smooth noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w + 6 * n, 3), dtype=np.uint8), (7, 7), 0)
    return [np.ascontiguousarray(base[:, 6 * i:6 * i + w]) for i in range(n)]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("graph_cache")


@pytest.mark.parametrize("shape", [(1, 32, 12, 40), (1, 32, 6, 20), (2, 16, 7, 13), (1, 192, 1, 2), (1, 8, 5, 33)])
def test_correlation_matmul_is_the_shift_loop(shape):
    gen = torch.Generator().manual_seed(0)
    reference, target = torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)
    expected = correlation_shifts(reference, target, 4)
    for tile in (4, 16):
        got = correlation_matmul(reference, target, 4, tile)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-6), (shape, tile)


def _engine(backend, cache_dir, precision="fp32", **kw):
    return SceneEngine("random", device="cpu", precision=precision, size=SIZE, output_resolution="network",
                       backend=backend, graph_cache=cache_dir, num_threads=1, **kw)


@_needs("onnxruntime")
def test_odd_pyramid_sizes_export_with_pytorch_shapes(tmp_path):
    """At 320×96 OFNet's 1/32 level has 3 rows and its 1/64 level ⌈3/2⌉ = 2: TF "SAME" ceil sizes must survive
    tracing (``-(-a // b)`` traced as a division toward zero gave 1 row and a decoder that refused its input)."""
    from omeganet_ros.nets import build_networks

    graphs = backends.open_graphs("onnxruntime", build_networks(), (320, 96), "fp32", 1, tmp_path)
    sessions = graphs.sessions
    level5 = [o.shape for o in sessions["flow_encoder"].session.get_outputs() if o.name == "level5"]
    assert level5 == [[1, 192, 2, 5]]
    assert max(v for d in graphs.entry.manifest["max_abs_diff"].values() for v in d.values()) < 1e-3


@_needs("onnxruntime")
def test_a_reversal_symmetric_camnet_exports_and_matches_pytorch(tmp_path):
    """CamNet(reversal_symmetric=True, still_subtracted=True) runs its pose head on three orders in one batch: the
    decoder graph keeps them."""
    from omeganet_ros.nets import CamNet, build_networks

    torch.manual_seed(0)
    networks = build_networks()
    networks["camnet"] = CamNet(reversal_symmetric=True, still_subtracted=True).eval()
    graphs = backends.open_graphs("onnxruntime", networks, (128, 64), "fp32", 1, tmp_path)
    assert max(graphs.entry.manifest["max_abs_diff"]["cam_decoder"].values()) < 1e-4
    # the same weights without the option are another graph: the cache tells them apart
    plain = dict(networks, camnet=CamNet().eval())
    plain["camnet"].load_state_dict(networks["camnet"].state_dict())
    assert backends.cache.weights_hash(plain) != backends.cache.weights_hash(networks)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=_needs(b)) for b in ("onnxruntime", "openvino")])
def test_backend_outputs_match_pytorch_fp32(backend, cache_dir):
    reference = _engine("torch", None)
    engine = _engine(backend, cache_dir)
    assert engine.backend == backend and engine.describe()["backend"] == backend
    # every exported graph was checked against PyTorch fp32 at export, per output
    graph_diffs = engine.describe()["graph_max_abs_diff_vs_torch_fp32"]
    assert set(graph_diffs) == set(backends.graphs.GRAPH_NAMES)
    assert max(v for d in graph_diffs.values() for v in d.values()) < 1e-3, graph_diffs
    frames = _frames(6)
    calls = {name: 0 for name in engine._backend_graphs.sessions}
    for name, session in engine._backend_graphs.sessions.items():
        run = session.run

        def counted(inputs, _run=run, _name=name):
            calls[_name] += 1
            return _run(inputs)
        session.run = counted
    compared = 0
    for i, frame in enumerate(frames):
        ref, out = reference.push(frame, 0.1 * i), engine.push(frame, 0.1 * i)
        assert (ref is None) == (out is None)
        if out is None:
            continue
        diffs = output_differences(ref, out)
        for name, tolerance in FP32_TOLERANCE.items():
            assert diffs[name] <= tolerance, f"{backend} {name}: {diffs[name]} > {tolerance}"
        assert diffs["semantic_agree"] >= 0.999
        assert out.flow.shape == (SIZE[1], SIZE[0], 2) and np.abs(out.flow).max() > 0
        compared += 1
    assert compared == 4
    # per-frame graphs: encoders once per frame, DSNet and the decoders once per output
    assert calls == {"dsnet": 4, "cam_encoder": 6, "flow_encoder": 6, "cam_decoder": 4, "flow_decoder": 4}


@_needs("openvino")
def test_openvino_bf16_runs_in_bf16_and_stays_close(cache_dir):
    engine = _engine("openvino", cache_dir, precision="bf16")
    assert engine.precision == "bf16"
    sessions = engine._backend_graphs.sessions
    # The plugin runs bf16 only where the CPU has it natively (AMX / AVX-512-BF16); elsewhere (e.g. an AMD EPYC
    # without AVX-512) it falls back to f32, and each session reports what it actually runs.
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert all(s.precision == expected for s in sessions.values()), {n: s.precision for n, s in sessions.items()}
    reference = _engine("torch", None)
    frames = _frames(3)
    for i, frame in enumerate(frames):
        ref, out = reference.push(frame, 0.1 * i), engine.push(frame, 0.1 * i)
    diffs = output_differences(ref, out)
    assert diffs["depth_rel_max"] < 0.05 and diffs["flow_px_max"] < 0.5 and diffs["ego_translation_max"] < 1e-2, diffs


@_needs("onnxruntime")
def test_cache_is_reused_and_stale_or_corrupt_entries_are_exported_again(tmp_path, caplog):
    torch.manual_seed(3)
    from omeganet_ros.nets import build_networks

    networks = build_networks()
    first = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert first.entry.exported and first.entry.reason == "no cache yet"
    folder = first.entry.path
    assert folder.parent == tmp_path / "graphs" and folder.name.startswith("onnxruntime-fp32-128x64-")
    again = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert not again.entry.exported and again.entry.path == folder

    # a newer package version (or opset, torch, code) makes the entry stale: exported again in place
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["package_version"] = "0.0.0-old"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    stale = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert stale.entry.exported and stale.entry.reason.startswith("stale: package_version")

    # a truncated graph file fails its checksum: exported again
    graph = folder / stale.entry.manifest["graphs"]["flow_decoder"]
    graph.write_bytes(graph.read_bytes()[:1000])
    corrupt = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert corrupt.entry.exported and corrupt.entry.reason == "corrupt: flow_decoder.onnx does not match its SHA-256"

    # an unreadable manifest too
    (folder / "manifest.json").write_text("{not json")
    broken = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert broken.entry.exported and broken.entry.reason.startswith("corrupt manifest")

    # other weights: another entry, the first one untouched
    with torch.no_grad():
        networks["ofnet"].context.layers[-1].conv.bias.add_(1.0)
    other = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert other.entry.exported and other.entry.path != folder and folder.is_dir()
    assert not list((tmp_path / "graphs").glob("*.tmp-*"))  # no half-written folders left behind


@_needs("onnxruntime")
def test_a_cached_file_that_does_not_load_is_exported_again_once(tmp_path, monkeypatch):
    from omeganet_ros.backends import onnxruntime_backend
    from omeganet_ros.nets import build_networks

    networks = build_networks()
    backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    real = onnxruntime_backend.Session
    failures = []

    def flaky(path, threads, precision):
        if not failures:
            failures.append(path)
            raise RuntimeError("simulated: cannot parse the model")
        return real(path, threads, precision)
    monkeypatch.setattr(onnxruntime_backend, "Session", flaky)
    graphs = backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path)
    assert failures and graphs.entry.exported and "did not load: simulated" in graphs.entry.reason

    def broken(path, threads, precision):
        raise RuntimeError("simulated: cannot parse the model")
    monkeypatch.setattr(onnxruntime_backend, "Session", broken)
    with pytest.raises(backends.BackendError, match="does not load or run"):
        backends.open_graphs("onnxruntime", networks, SIZE, "fp32", 1, tmp_path / "other")


def test_backend_choice_and_clear_errors(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert backends.resolve_backend("torch", cpu) == "torch"
    assert backends.resolve_backend("auto", cuda) == "torch"
    assert backends.resolve_backend("auto", cpu, compile=True) == "torch"
    expected_auto = next(b for b in backends.AUTO_ORDER if b in INSTALLED)
    assert backends.resolve_backend("auto", cpu) == expected_auto
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        backends.resolve_backend("tensorrt", cpu)
    for name in ("onnxruntime", "openvino"):
        monkeypatch.setattr(backends._MODULES[name], "PACKAGE", f"{name}_not_installed")
    assert backends.resolve_backend("auto", cpu) == "torch"  # nothing else installed: torch
    with pytest.raises(backends.BackendError, match=r"not installed: pip install 'omeganet_ros\[openvino\]'"):
        backends.resolve_backend("openvino", cpu)
    monkeypatch.undo()
    if "openvino" in INSTALLED:
        with pytest.raises(backends.BackendError, match="CPU only"):
            backends.resolve_backend("openvino", cuda)
        with pytest.raises(backends.BackendError, match="compile applies to backend 'torch' only"):
            backends.resolve_backend("openvino", cpu, compile=True)
    assert backends.backend_precision("onnxruntime", "auto", True) == "fp32"
    assert backends.backend_precision("openvino", "auto", True) == "bf16"
    assert backends.backend_precision("openvino", "auto", False) == "fp32"
    with pytest.raises(backends.BackendError, match="runs precision \\['fp32'\\], not 'bf16'"):
        backends.backend_precision("onnxruntime", "bf16", True)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("OMEGANET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert graph_cache.cache_root() == tmp_path / "xdg" / "omeganet_ros"
    monkeypatch.setenv("OMEGANET_CACHE_DIR", str(tmp_path / "mine"))
    assert graph_cache.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("OMEGANET_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert graph_cache.cache_root() == tmp_path / "home" / ".cache" / "omeganet_ros"


@_needs("onnxruntime")
def test_infer_backend_option(tmp_path, monkeypatch, capsys):
    from omeganet_ros.cli import infer

    monkeypatch.setenv("OMEGANET_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(_frames(3)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out = tmp_path / "pred"
    assert infer.main(["--input", str(folder), "--out", str(out), "--size", "128x64", "--checkpoint", "random",
                       "--quiet", "--threads", "1", "--backend", "onnxruntime", "--precision", "auto"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["engine"]["backend"] == "onnxruntime" and meta["engine"]["precision"] == "fp32"
    assert meta["engine"]["graph_cache"].startswith(str(tmp_path / "cache"))
    capsys.readouterr()
    assert infer.main(["--input", str(folder), "--out", str(tmp_path / "x"), "--checkpoint", "random",
                       "--backend", "onnxruntime", "--precision", "bf16", "--quiet"]) == 2
    assert "runs precision ['fp32'], not 'bf16'" in capsys.readouterr().err


@_needs("onnxruntime")
def test_node_runs_the_backend_it_is_given(tmp_path, rclpy_available):
    import node_helpers as h
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from omeganet_ros.msg import SceneUnderstanding

    # backend_export wait: configure exports first (the background default: test_background_export.py)
    with h.NodeProcess({"backend": "onnxruntime", "backend_export": "wait"}, env={"OMEGANET_CACHE_DIR": str(tmp_path)}) as node, \
            h.RosClient() as client:
        client.collect(DiagnosticArray, "/diagnostics")
        diagnostics = lambda: client.latest_diagnostics(node.name) or {}  # noqa: E731
        assert client.spin_until(lambda: diagnostics().get("backend") == "onnxruntime", 120, node), node.output()
        publisher = client.publisher(Image, "image")
        scenes = client.collect(SceneUnderstanding, "scene")
        client.wait_for_subscriber(publisher, node=node)
        assert client.spin_until(lambda: client.node.count_publishers("/scene") > 0, 30, node)
        client.spin_for(0.5)
        for i, frame in enumerate(h.synthetic_frames(4)):
            publisher.publish(h.image_msg(frame, 1_700_000_000_000_000_000 + (i + 1) * 100_000_000))
            client.spin_for(0.4)
        assert client.spin_until(lambda: len(scenes) >= 1, 60, node), node.output()
    assert list((tmp_path / "graphs").glob("onnxruntime-fp32-*"))  # the node exported into the cache it was given


@_needs("openvino")
def test_openvino_int8_quantizes_on_its_calibration_frames(tmp_path):
    pytest.importorskip("nncf", reason="precision int8 quantizes with NNCF (pip install nncf)")
    reference = _engine("torch", None)
    engine = _engine("openvino", tmp_path, precision="int8")
    described = engine.describe()
    assert engine.precision == "int8" and described["backend_precision"] == "int8"
    assert all(s.precision.startswith("int8+") for s in engine._backend_graphs.sessions.values())
    manifest = engine._backend_graphs.entry.manifest
    assert manifest["precision"] == "int8" and len(manifest["calibration_sha256"]) == 64
    for i, frame in enumerate(_frames(3)):
        ref, out = reference.push(frame, 0.1 * i), engine.push(frame, 0.1 * i)
    diffs = output_differences(ref, out)
    assert 0 < diffs["depth_rel_max"] < 0.05 and diffs["flow_px_max"] < 0.5, diffs  # quantized: close, not equal
    # the calibration frames are part of the cache key: other frames, another quantization
    networks = engine.networks
    again = backends.open_graphs("openvino", networks, SIZE, "int8", 1, tmp_path)
    assert not again.entry.exported
    other = backends.open_graphs("openvino", networks, SIZE, "int8", 1, tmp_path, calibration=_frames(4, seed=5))
    assert other.entry.exported and other.entry.reason.startswith("stale: calibration_sha256")
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        _engine("torch", None, precision="int8")


@_needs("openvino")
def test_auto_falls_back_to_torch_when_the_backend_cannot_be_used(monkeypatch, caplog, tmp_path):
    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "graphs"))
    monkeypatch.setattr(backends, "open_graphs", unwritable)
    engine = _engine("auto", tmp_path, precision="auto")
    assert engine.backend == "torch" and engine.describe()["backend"] == "torch"
    assert "backend auto: openvino could not be used (PermissionError" in caplog.text
    frames = _frames(3)
    assert [engine.push(f, 0.1 * i) is not None for i, f in enumerate(frames)] == [False, False, True]
    with pytest.raises(PermissionError):  # asked for by name: the error, not a silent change of backend
        _engine("openvino", tmp_path)
