"""The engine's five per-frame inference graphs, as PyTorch modules for ONNX export (opset 17).

The engine runs each frame's encoders once and caches their features for the three triples the
frame belongs to; the exported graphs keep that split, so no graph re-encodes a frame:

============== ================================== ===================================================
graph          inputs                             outputs
============== ================================== ===================================================
dsnet          ``image`` 1×3×H×W RGB in [0, 1]    ``disp`` 1×1×H×W (the engine's ``disp_full``),
                                                  ``semantic`` 1×C×H×W logits
cam_encoder    ``image``                          the CamNet features its decoder reads
cam_decoder    those features of t−1, t, t+1      ``motion`` 1×2×6 (t−1→t, t→t+1), ``K`` 1×3×3 pixels
flow_encoder   ``image``                          the OFNet pyramid levels its decoder reads
flow_decoder   those levels of t−1, t, t+1        ``flow`` 1×2×H×W forward flow t→t+1 in pixels
============== ================================== ===================================================

Which encoder levels a decoder reads is found by perturbing each level and watching the decoder's
outputs (the authors' CamNet reads only its 1/16 level; OFNet every level but the 1/2 one), so no
unused feature map is computed into an output or copied between graphs. Sizes are fixed at export
(the padding to multiples of 32/64 is resolved then); batch 1. The correlation exports as
Gather → MatMul → Gather (:func:`~omeganet_ros.nets.layers.correlation_matmul`).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..nets.layers import fixed_batch_export, fold_batch_norms

OPSET = 17
GRAPH_NAMES = ("dsnet", "cam_encoder", "cam_decoder", "flow_encoder", "flow_decoder")
FRAMES = ("prev", "cur", "next")


@dataclass
class GraphSpec:
    """One exported graph: its module (fp32, NCHW), example inputs, input and output names."""

    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    example: tuple[torch.Tensor, ...]


class _DSNetGraph(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        out = self.net(image)
        return out["disp_full"].float(), out["semantic"].float()


class _EncoderGraph(nn.Module):
    """An encoder with only the levels its decoder reads as outputs."""

    def __init__(self, net, levels: list[int]):
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, image):
        features = self.net.encode(image)
        return tuple(features[i] for i in self.levels)


class _DecoderGraph(nn.Module):
    """A three-frame decoder fed with the read levels of t−1, t, t+1; unread levels are zero constants."""

    def __init__(self, net, levels: list[int], shapes: list[tuple[int, ...]], height: int, width: int, kind: str):
        super().__init__()
        self.net, self.levels, self.shapes = net, levels, shapes
        self.height, self.width, self.kind = height, width, kind

    def _frame(self, given):
        features = [torch.zeros(shape) for shape in self.shapes]
        for level, tensor in zip(self.levels, given):
            features[level] = tensor
        return features

    def forward(self, *tensors):
        n = len(self.levels)
        prev, cur, nxt = (self._frame(tensors[k * n:(k + 1) * n]) for k in range(3))
        if self.kind == "camnet":
            out = self.net.decode(prev, cur, nxt, self.height, self.width)
            return out["motion"].float(), out["K"].float()
        return self.net.decode(prev, cur, nxt, self.height, self.width, backward=False)["flow_fw"][0].float()


def _decoder_output(net, kind: str, frames: list[list[torch.Tensor]], height: int, width: int) -> list[torch.Tensor]:
    if kind == "camnet":
        out = net.decode(*frames, height, width)
        return [out["motion"], out["K"]]
    return [net.decode(*frames, height, width, backward=False)["flow_fw"][0]]


def read_levels(net, kind: str, images: list[torch.Tensor]) -> list[int]:
    """Encoder levels whose values change ``net.decode``'s outputs (each level perturbed in all three frames)."""
    height, width = images[0].shape[-2:]
    with torch.no_grad():
        frames = [net.encode(image) for image in images]
        base = _decoder_output(net, kind, frames, height, width)
        used = []
        for level in range(len(frames[0])):
            perturbed = [[f + 1.0 + f.abs() if i == level else f for i, f in enumerate(feats)] for feats in frames]
            out = _decoder_output(net, kind, perturbed, height, width)
            if any(not torch.equal(a, b) for a, b in zip(base, out)):
                used.append(level)
    return used


def example_images(size: tuple[int, int], n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """``n`` 1×3×H×W RGB frames in [0, 1]: smooth noise, shifted a few pixels from frame to frame."""
    w, h = size
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 4 + 2, w // 4 + 2 + n, generator=gen)
    base = nn.functional.interpolate(base, scale_factor=4.0, mode="bilinear", align_corners=False)
    return [base[..., :h, 4 * i:4 * i + w].contiguous() for i in range(n)]


def inference_copies(networks: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """fp32 NCHW eval copies of the engine's three networks with BatchNorm folded (what is exported)."""
    return {name: fold_batch_norms(copy.deepcopy(networks[name]).float().cpu().eval())
            .to(memory_format=torch.contiguous_format) for name in ("dsnet", "camnet", "ofnet")}


def build_graphs(networks: dict[str, nn.Module], size: tuple[int, int]) -> list[GraphSpec]:
    """The five :class:`GraphSpec` of the engine's networks at ``size`` (W, H); ``networks`` are not modified."""
    nets = inference_copies(networks)
    w, h = size
    images = example_images(size)
    specs = [GraphSpec("dsnet", _DSNetGraph(nets["dsnet"]).eval(), ["image"], ["disp", "semantic"], (images[1],))]
    for kind, prefix in (("camnet", "cam"), ("ofnet", "flow")):
        net = nets[kind]
        levels = read_levels(net, kind, images)
        if not levels:
            raise ValueError(f"{kind}: its decoder reads none of its encoder's levels")
        with torch.no_grad():
            features = [net.encode(image) for image in images]
        shapes = [tuple(f.shape) for f in features[0]]
        names = [f"level{i}" for i in levels]
        specs.append(GraphSpec(f"{prefix}_encoder", _EncoderGraph(net, levels).eval(), ["image"], names,
                               (images[1],)))
        decoder_inputs = [f"{frame}_{n}" for frame in FRAMES for n in names]
        example = tuple(features[k][i] for k in range(3) for i in levels)
        outputs = ["motion", "K"] if kind == "camnet" else ["flow"]
        specs.append(GraphSpec(f"{prefix}_decoder", _DecoderGraph(net, levels, shapes, h, w, kind).eval(),
                               decoder_inputs, outputs, example))
    return specs


def export_graph(spec: GraphSpec, path: Path) -> Path:
    """Write ``spec`` as an ONNX file (opset :data:`OPSET`, fixed shapes, constants folded)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings(), fixed_batch_export():
        warnings.simplefilter("ignore")  # tracer notes about shape checks that are constant at a fixed size
        # The TorchScript-based exporter: no onnxscript dependency, mature for these plain conv nets.
        torch.onnx.export(spec.module, spec.example, str(path), input_names=spec.inputs, output_names=spec.outputs,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return path


def reference_outputs(spec: GraphSpec, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """PyTorch fp32 outputs of ``spec`` for named numpy inputs (the reference the backends are checked against)."""
    with torch.no_grad():
        out = spec.module(*(torch.from_numpy(inputs[n]) for n in spec.inputs))
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def calibration_inputs(specs: list[GraphSpec], images: list[torch.Tensor]) -> dict[str, list[list[np.ndarray]]]:
    """Inputs of every graph over a frame sequence (1×3×H×W RGB in [0, 1], at least 3), for int8 calibration:
    per frame for DSNet and the encoders, per consecutive triple for the decoders (fed the PyTorch encoders' features)."""
    if len(images) < 3:
        raise ValueError(f"int8 calibration needs at least 3 frames, got {len(images)}")
    by_name = {spec.name: spec for spec in specs}
    out: dict[str, list[list[np.ndarray]]] = {}
    with torch.no_grad():
        for name in GRAPH_NAMES:
            spec = by_name[name]
            if name in ("dsnet", "cam_encoder", "flow_encoder"):
                out[name] = [[image.numpy()] for image in images]
                continue
            encoder = by_name[name.replace("decoder", "encoder")].module
            features = [[f.numpy() for f in encoder(image)] for image in images]
            out[name] = [features[i - 1] + features[i] + features[i + 1] for i in range(1, len(images) - 1)]
    return out


def frames_to_images(frames: list[np.ndarray], size: tuple[int, int]) -> list[torch.Tensor]:
    """H×W×3 uint8 RGB frames → 1×3×H×W float tensors in [0, 1] at ``size`` (W, H), resized as the engine does."""
    import cv2

    w, h = size
    images = []
    for frame in frames:
        if (frame.shape[1], frame.shape[0]) != (w, h):
            shrink = frame.shape[1] > w and frame.shape[0] > h
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        images.append(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0).float() / 255.0)
    return images
