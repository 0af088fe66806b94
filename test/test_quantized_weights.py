"""Integer-coded checkpoint weights (quantized_weights.py): bounded error, exact where representable, the file a
plain weights-only checkpoint that load_checkpoint turns back into float32, malformed records refused."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from omeganet_ros.checkpoint import CheckpointError, build_networks_from_checkpoint, load_checkpoint, save_checkpoint
from omeganet_ros.quantized_weights import (MIN_ELEMENTS, dequantize_tensor, quantize_state_dicts, quantize_tensor)


@pytest.mark.parametrize("shape", [(64, 32, 3, 3), (3, 5, 3, 3), (17, 301)])
def test_round_trip_error_is_bounded_and_codes_take_one_byte_or_half(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.05
    row = math.prod(shape[1:])
    for bits, group, bound in ((8, 0, 0.01), (4, 32, 0.12)):
        codes, spec = quantize_tensor(w, bits, group)
        back = dequantize_tensor(codes, spec)
        assert back.shape == w.shape and back.dtype == torch.float32
        assert float((back - w).norm() / w.norm()) < bound, bits
        groups = 1 if bits == 8 else math.ceil(row / 32)
        assert tuple(spec["scales"].shape) == (shape[0], groups) and spec["scales"].dtype == torch.float16
        stored = shape[0] * groups * (row if bits == 8 else 32)
        assert codes.numel() == (stored if bits == 8 else (stored + 1) // 2)


def test_values_on_the_grid_come_back_exactly():
    levels = torch.arange(-7, 8, dtype=torch.float32)
    w = levels[torch.randint(0, 15, (8, 64), generator=torch.Generator().manual_seed(1))] * 0.25
    w[:, 0], w[:, 32] = 7 * 0.25, -7 * 0.25  # every group reaches ±7 steps: scale 0.25, no clipping wins
    for bits in (8, 4):
        codes, spec = quantize_tensor(w, bits, 32)
        if bits == 8:  # 127 levels over the same range: the grid of 0.25 is not on it, but close
            assert float((dequantize_tensor(codes, spec) - w).abs().max()) < 0.25 / 127 * 7
        else:
            assert torch.equal(dequantize_tensor(codes, spec), w)


@pytest.fixture(scope="module")
def posenet():
    from omeganet_ros.nets import build_networks

    torch.manual_seed(0)
    return build_networks(architecture="moreau")["posenet"]


@pytest.mark.parametrize("scheme, ratio", [("int8", 0.52), ("int4", 0.29)])
def test_checkpoint_with_coded_kernels_loads_weights_only_and_as_float32(posenet, tmp_path, scheme, ratio):
    fp16 = save_checkpoint(tmp_path / "fp16.pt", {"posenet": copy.deepcopy(posenet).half()}, input_size=(256, 96),
                           classes=[])
    coded = save_checkpoint(tmp_path / f"{scheme}.pt", {"posenet": posenet}, input_size=(256, 96), classes=[],
                            weight_storage=scheme)
    # Not a byte more than the codes and scales: about half / under a third of float16.
    assert coded.stat().st_size < ratio * fp16.stat().st_size
    raw = torch.load(coded, map_location="cpu", weights_only=True)
    assert raw["quantized"]["scheme"] == scheme
    kernel = "encoder.layer4.1.conv2.weight"
    assert raw["state_dicts"]["posenet"][kernel].dtype == (torch.int8 if scheme == "int8" else torch.uint8)
    assert kernel in raw["quantized"]["tensors"]["posenet"]
    small = [k for k, v in posenet.state_dict().items() if v.is_floating_point() and v.numel() < MIN_ELEMENTS]
    assert small and all(raw["state_dicts"]["posenet"][k].dtype == torch.float16 for k in small)

    ckpt = load_checkpoint(coded)
    original = posenet.state_dict()
    for key, value in ckpt.state_dicts["posenet"].items():
        assert value.dtype == original[key].dtype and value.shape == original[key].shape, key
    w = original[kernel]
    error = float((ckpt.state_dicts["posenet"][kernel] - w).norm() / w.norm())
    assert error < (0.01 if scheme == "int8" else 0.12)
    net = build_networks_from_checkpoint(ckpt)["posenet"]
    x = torch.rand(1, 3, 96, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        motion, reference = net(x, x.flip(-1)), posenet.eval()(x, x.flip(-1))
    assert motion.shape == reference.shape == (1, 4, 4)


def test_malformed_records_are_refused_naming_the_tensor(posenet, tmp_path):
    path = save_checkpoint(tmp_path / "int4.pt", {"posenet": posenet}, input_size=(256, 96), classes=[],
                           weight_storage="int4")
    payload = torch.load(path, weights_only=True)
    kernel = "encoder.layer1.0.conv1.weight"

    def broken(change, name):
        bad = torch.load(path, weights_only=True)
        change(bad)
        target = tmp_path / f"{name}.pt"
        torch.save(bad, target)
        return target

    cases = {
        "scales_shape": (lambda p: p["quantized"]["tensors"]["posenet"][kernel].update(
            scales=payload["quantized"]["tensors"]["posenet"][kernel]["scales"][:, :1]), "scales of shape"),
        "nan_scale": (lambda p: p["quantized"]["tensors"]["posenet"][kernel]["scales"].fill_(float("nan")), "NaN"),
        "codes_cut": (lambda p: p["state_dicts"]["posenet"].update({kernel: p["state_dicts"]["posenet"][kernel][:-4]}),
                      "bytes for"),
        "no_codes": (lambda p: p["state_dicts"]["posenet"].pop(kernel), "has no codes"),
        "format": (lambda p: p["quantized"].update(format="something/else"), "not an omeganet_ros.quantized/1"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(broken(change, name))
        assert str(tmp_path) in str(info.value), name
    with pytest.raises(ValueError, match="unknown weight storage"):
        quantize_state_dicts({"posenet": posenet.state_dict()}, "int3")


def test_the_packaged_moreau_reference_is_int8_coded_and_opens_as_the_moreau_engine():
    from omeganet_ros.moreau_engine import DEFAULT_MOREAU_CHECKPOINT, MoreauEngine, open_engine

    assert DEFAULT_MOREAU_CHECKPOINT.is_file()
    assert DEFAULT_MOREAU_CHECKPOINT.stat().st_size < 34e6  # 65.5 MB in float16
    raw = torch.load(DEFAULT_MOREAU_CHECKPOINT, map_location="cpu", weights_only=True)
    assert raw["quantized"]["scheme"] == "int8" and raw["provenance"]["export"]["weight_storage"] == "int8"
    engine = open_engine("moreau", device="cpu", num_threads=1)
    assert isinstance(engine, MoreauEngine) and engine.has_instances and engine.size == (256, 96)
    assert not engine.random_weights and engine.checkpoint_path == DEFAULT_MOREAU_CHECKPOINT
