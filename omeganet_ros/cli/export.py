"""omeganet-export: ONNX export of the three ΩNet networks (opset 17), inference outputs only.

::

    omeganet-export --checkpoint model.pt --out onnx/ [--size 640x192] [--verify]

Writes, for a fixed input size W×H (images B×3×H×W float RGB in [0, 1]):

* ``dsnet.onnx``: ``image`` → ``disp`` B×1×H×W disparity (the authors' DSNet:
  mean-normalised, depth = 1 / disp; a legacy DSNet: a sigmoid, depth =
  1 / (0.01 + 9.99·disp)), ``semantic`` B×19×H×W logits;
* ``camnet.onnx``: ``prev``, ``cur``, ``next`` → ``motion`` B×2×6 pose vectors
  (t−1→t, t→t+1: translation, axis-angle), ``K`` B×3×3 intrinsics in pixels;
* ``ofnet.onnx``: ``prev``, ``cur``, ``next`` → ``flow`` B×2×H×W forward flow
  t→t+1 in pixels;
* ``export.json``: sizes, opset, checkpoint and, with ``--verify``, the largest
  ONNX Runtime vs PyTorch difference per output.

The batch dimension is dynamic; height and width are fixed (the padding to
multiples of 32/64 is resolved at export time).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


class DSNetExport(nn.Module):
    """DSNet with tensor outputs: (disp B×1×H×W, semantic logits B×C×H×W)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        out = self.net(image)
        return out["disp_full"], out["semantic"]


class CamNetExport(nn.Module):
    """CamNet with tensor outputs: (motion B×2×6, K B×3×3)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, prev, cur, next):
        out = self.net(prev, cur, next)
        return out["motion"], out["K"]


class OFNetExport(nn.Module):
    """OFNet with the full-resolution forward flow only: flow B×2×H×W (backward branch skipped)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, prev, cur, next):
        return self.net(prev, cur, next, backward=False)["flow_fw"][0]


EXPORTS = {
    "dsnet": (DSNetExport, ["image"], ["disp", "semantic"]),
    "camnet": (CamNetExport, ["prev", "cur", "next"], ["motion", "K"]),
    "ofnet": (OFNetExport, ["prev", "cur", "next"], ["flow"]),
}


def export_network(name: str, net: nn.Module, path, size: tuple[int, int]) -> Path:
    """Export one network (``"dsnet"``, ``"camnet"`` or ``"ofnet"``) at ``size`` (W, H) to ``path``."""
    wrapper_cls, inputs, outputs = EXPORTS[name]
    wrapper = wrapper_cls(net.eval()).eval()
    w, h = size
    example = tuple(torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i)) for i in range(len(inputs)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {n: {0: "batch"} for n in inputs + outputs}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape checks that are constant at a fixed size
        # The TorchScript-based exporter: no onnxscript dependency, and mature for these plain conv nets.
        torch.onnx.export(wrapper, example, str(path), input_names=inputs, output_names=outputs,
                          opset_version=OPSET, dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)
    return path


def verify_network(name: str, net: nn.Module, path, size: tuple[int, int], batch: int = 1, seed: int = 0) -> dict:
    """Largest absolute difference per output between ONNX Runtime and PyTorch on random frames."""
    import onnxruntime as ort

    wrapper_cls, inputs, outputs = EXPORTS[name]
    wrapper = wrapper_cls(net.eval()).eval()
    w, h = size
    gen = torch.Generator().manual_seed(seed)
    feeds = [torch.rand(batch, 3, h, w, generator=gen) for _ in inputs]
    with torch.no_grad():
        ref = wrapper(*feeds)
    ref = ref if isinstance(ref, tuple) else (ref,)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(outputs, {n: t.numpy() for n, t in zip(inputs, feeds)})
    return {o: float(np.abs(g - r.numpy()).max()) for o, g, r in zip(outputs, got, ref)}


def build_parser() -> argparse.ArgumentParser:
    from .infer import parse_size

    p = argparse.ArgumentParser(prog="omeganet-export", description="ONNX export (opset 17) of DSNet, CamNet and OFNet")
    p.add_argument("--checkpoint", default=None,
                   help="omeganet_ros checkpoint; default: the installed reference model, else random weights; 'random' forces them")
    p.add_argument("--out", required=True, help="output folder for the .onnx files")
    p.add_argument("--size", type=parse_size, default=None, help="input WxH (default: the checkpoint's input size, else 640x192)")
    p.add_argument("--networks", default="dsnet,camnet,ofnet", help="comma-separated subset to export")
    p.add_argument("--verify", action="store_true", help="compare ONNX Runtime with PyTorch on random frames")
    return p


def load_networks(checkpoint) -> tuple[dict, str | None, tuple[int, int] | None]:
    """(networks, checkpoint path or None, trained input size or None)."""
    from ..checkpoint import build_networks_from_checkpoint, default_checkpoint_path, load_checkpoint
    from ..nets import build_networks

    if checkpoint is None:
        checkpoint = default_checkpoint_path()
    if checkpoint is None or checkpoint == "random":
        if checkpoint is None:
            warnings.warn("omeganet-export: no checkpoint given or installed: exporting RANDOM weights", RuntimeWarning)
        torch.manual_seed(0)
        return build_networks(), None, None
    ckpt = load_checkpoint(checkpoint)
    return build_networks_from_checkpoint(ckpt), str(ckpt.path), ckpt.input_size


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        networks, ckpt_path, trained_size = load_networks(args.checkpoint)
        size = args.size or trained_size or (640, 192)
        names = [n.strip() for n in args.networks.split(",") if n.strip()]
        unknown = [n for n in names if n not in EXPORTS]
        if unknown:
            raise ValueError(f"unknown network(s) {unknown}; choose from {sorted(EXPORTS)}")
        missing = [n for n in names if n not in networks]
        if missing:
            raise ValueError(f"checkpoint {ckpt_path} has no network(s) {missing}")
        out = Path(args.out)
        report = {"opset": OPSET, "size": list(size), "checkpoint": ckpt_path, "files": {}, "max_abs_diff": {}}
        for name in names:
            path = export_network(name, networks[name], out / f"{name}.onnx", size)
            report["files"][name] = path.name
            if args.verify:
                report["max_abs_diff"][name] = verify_network(name, networks[name], path, size)
        (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    except (OSError, ValueError) as exc:
        print(f"omeganet-export: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
