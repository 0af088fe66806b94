"""Import the authors' published ΩNet TensorFlow weights into this package's networks and checkpoint format.

The authors' releases (CVLAB-Unibo/omeganet) are TF 1.x checkpoints saved with
``tf.train.Saver(var_list=network.get_network_params())``: the trainable variables under
``MultiViewNetwork`` (DSNet + CameraNet), every BatchNorm moving mean/variance, and (complete
ΩNet only) the trainable variables under ``superflow`` (SD-OFNet). Their inference code is the
specification of :class:`~omeganet_ros.nets.DSNet`, :class:`~omeganet_ros.nets.CamNet` and
:class:`~omeganet_ros.nets.OFNet`; this module maps each variable name onto a parameter or
buffer of those networks (kernels HWIO → OIHW) and writes an ``omeganet_ros.checkpoint``.

The mapping works from a plain ``{name: numpy array}`` dict (:func:`networks_from_variables`), so
it needs no TensorFlow; only reading the ``.index`` + ``.data-*`` files does
(:func:`read_tf_checkpoint`: in this interpreter when TensorFlow is installed, else in another
one given with ``tf_python``, e.g. the ``.venv-tf`` of ``.ci/official_equivalence.sh``).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, save_checkpoint
from .classes import CLASS_NAMES
from .nets import CamNet, DSNet, OFNet

AUTHORS_TERMS = ("weights under the authors' terms: ΩNet (Tosi, Aleotti, Zama Ramirez et al., CVPR 2020), "
                 "github.com/CVLAB-Unibo/omeganet")
AUTHORS_TAU = 0.5  # the default τ of the authors' single_inference.py and test.py
RELEASE_SIZES = {"omeganet": (640, 192), "baseline": (1024, 320)}  # (W, H) of the authors' releases

_PYRAMID_LEVELS = 5
_FLOW_LEVELS = 6


def _conv_bn(tf_scope: str, ours: str) -> dict[str, str]:
    """Variables of one authors' ``ops.conv2d`` (conv + slim.batch_norm, no γ) → a ConvBNReLU's state keys."""
    return {f"{tf_scope}/Conv/weights": f"{ours}.conv.weight",
            f"{tf_scope}/Conv/BatchNorm/beta": f"{ours}.beta",
            f"{tf_scope}/Conv/BatchNorm/moving_mean": f"{ours}.bn.running_mean",
            f"{tf_scope}/Conv/BatchNorm/moving_variance": f"{ours}.bn.running_var"}


def _conv(tf_scope: str, ours: str, bias: bool = True) -> dict[str, str]:
    names = {f"{tf_scope}/weights": f"{ours}.weight"}
    if bias:
        names[f"{tf_scope}/biases"] = f"{ours}.bias"
    return names


def _pyramid(tf_scope: str, ours: str) -> dict[str, str]:
    names = {}
    for level in range(1, _PYRAMID_LEVELS + 1):
        for k, suffix in enumerate("ab"):
            names.update(_conv_bn(f"{tf_scope}/conv{level}{suffix}", f"{ours}.levels.{level - 1}.{k}"))
    return names


def variable_map() -> dict[str, dict[str, str]]:
    """{network: {authors' variable name: our state-dict key}} for "dsnet", "camnet" and "ofnet"."""
    dsnet = _pyramid("MultiViewNetwork/feature_extractor/img_pyramid", "encoder")
    depthnet = "MultiViewNetwork/monocular_depthnet"
    for level in range(1, _PYRAMID_LEVELS + 1):
        ours = f"levels.{level - 1}"
        for k in range(4):
            dsnet.update(_conv_bn(f"{depthnet}/L{level}/estimator/build_estimator/disp-{k + 3}", f"{ours}.estimator.{k}"))
        head = f"{depthnet}/L{level}/disparity/disparity_estimator"
        for k in range(3):
            dsnet.update(_conv_bn(f"{head}/conv{k + 1}", f"{ours}.disparity.{k}"))
        dsnet.update(_conv(f"{head}/disparity/Conv", f"{ours}.disparity_out"))
        if level > 1:
            dsnet.update(_conv_bn(f"{depthnet}/L{level}/upsampler/bilinear_upsampling_by_convolution", f"{ours}.upsampler"))
    semantic = f"{depthnet}/L1/semantic/semantic_estimator"
    for k, scope in enumerate(("conv1", "conv2", "conv3", "disparity")):  # the authors named the last one "disparity"
        dsnet.update(_conv_bn(f"{semantic}/{scope}", f"semantic.{k}"))

    camnet = _pyramid("MultiViewNetwork/feature_extractor_pose/img_pyramid", "encoder")
    for k, scope in enumerate(("conv1_a", "conv1_b", "conv2_a", "conv2_b")):
        camnet.update(_conv_bn(f"MultiViewNetwork/pose_net/{scope}", f"pose_convs.{k}"))
    camnet.update(_conv("MultiViewNetwork/pose_net/pred/Conv", "pose_pred"))
    camnet.update(_conv("MultiViewNetwork/pose_net/intrinsics/foci", "foci"))
    camnet.update(_conv("MultiViewNetwork/pose_net/intrinsics/offsets", "offsets", bias=False))

    ofnet = {}
    for level in range(1, _FLOW_LEVELS + 1):
        for k in range(2):
            ofnet.update(_conv(f"superflow/feature_extractor/conv{level}_{k + 1}", f"pyramid.levels.{level - 1}.{k}.conv"))
    for level in range(2, _FLOW_LEVELS + 1):
        for k in range(6):
            ofnet.update(_conv(f"superflow/estimator_level_{level}/conv{k + 1}", f"estimators.{level - 2}.layers.{k}.conv"))
    for k in range(7):
        ofnet.update(_conv(f"superflow/context_network/dilated_conv{k + 1}", f"context.layers.{k}.conv"))
    return {"dsnet": dsnet, "camnet": camnet, "ofnet": ofnet}


def _describe_missing(names: list[str]) -> str:
    shown = ", ".join(names[:4])
    return f"{len(names)} variable(s) missing, e.g. {shown}" + (" …" if len(names) > 4 else "")


def networks_from_variables(variables: Mapping[str, np.ndarray], source: str = "checkpoint") -> tuple[dict[str, nn.Module], dict]:
    """Build DSNet + CamNet (+ OFNet when the ``superflow`` variables are there) from the authors' variables.

    ``variables``: {TF variable name: array} (kernels HWIO). Variables that are not the networks'
    (optimiser slots, ``global_step``) are ignored and counted. Raises :class:`CheckpointError`
    naming ``source`` and the missing variables when DSNet or CameraNet is incomplete, when only
    part of SD-OFNet is there, or when a shape does not fit. Returns (networks in eval mode, report).
    """
    mapping = variable_map()
    present = {net: [n for n in names if n in variables] for net, names in mapping.items()}
    for net in ("dsnet", "camnet"):
        missing = sorted(set(mapping[net]) - set(present[net]))
        if missing:
            raise CheckpointError(f"{source}: not an ΩNet checkpoint of the authors ({net}: {_describe_missing(missing)})")
    has_flow = bool(present["ofnet"])
    if has_flow and len(present["ofnet"]) != len(mapping["ofnet"]):
        missing = sorted(set(mapping["ofnet"]) - set(present["ofnet"]))
        raise CheckpointError(f"{source}: SD-OFNet (superflow) is incomplete: {_describe_missing(missing)}")
    semantic_kernel = np.asarray(variables["MultiViewNetwork/monocular_depthnet/L1/semantic/semantic_estimator/disparity/Conv/weights"])
    networks: dict[str, nn.Module] = {"dsnet": DSNet(num_classes=int(semantic_kernel.shape[-1])), "camnet": CamNet()}
    if has_flow:
        networks["ofnet"] = OFNet()
    used = set()
    for net_name, net in networks.items():
        state = net.state_dict()
        for tf_name, key in mapping[net_name].items():
            value = np.asarray(variables[tf_name], dtype=np.float32)
            if value.ndim == 4:
                value = value.transpose(3, 2, 0, 1)  # HWIO → OIHW
            if tuple(value.shape) != tuple(state[key].shape):
                raise CheckpointError(f"{source}: variable {tf_name} has shape {tuple(np.shape(variables[tf_name]))}, "
                                      f"{net_name}.{key} needs {tuple(state[key].shape)} (OIHW)")
            state[key] = torch.from_numpy(np.ascontiguousarray(value))
            used.add(tf_name)
        covered = set(mapping[net_name].values())
        uncovered = [k for k in state if k not in covered and not k.endswith("num_batches_tracked")]
        if uncovered:  # a network changed without this map: fail loudly, never import half a network
            raise CheckpointError(f"{source}: no authors' variable maps to {net_name}.{uncovered[:3]}")
        net.load_state_dict(state)
        net.eval()
    ignored = sorted(set(variables) - used)
    report = {"variables_imported": len(used), "values_imported": int(sum(np.size(variables[n]) for n in used)),
              "variables_ignored": len(ignored), "ignored_examples": ignored[:5],
              "networks": sorted(networks), "semantic_classes": int(semantic_kernel.shape[-1])}
    return networks, report


_DUMP_SCRIPT = """
import sys, json, numpy as np, tensorflow as tf
reader = tf.train.load_checkpoint(sys.argv[1])
names = sorted(reader.get_variable_to_shape_map())
np.savez(sys.argv[2], **{"v%d" % i: reader.get_tensor(n) for i, n in enumerate(names)})
open(sys.argv[3], "w").write(json.dumps(names))
"""


def checkpoint_files(prefix: Path) -> tuple[Path, list[Path]]:
    """The ``.index`` file and the ``.data-*`` shards of a TF checkpoint prefix; CheckpointError when absent."""
    prefix = Path(prefix)
    index = prefix.with_name(prefix.name + ".index")
    shards = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    if not index.is_file() or not shards:
        raise CheckpointError(f"TF checkpoint {prefix}: expected {index.name} and {prefix.name}.data-* beside it "
                              f"(give the prefix, e.g. models/omeganet, not a file name)")
    return index, shards


def read_tf_checkpoint(prefix, tf_python: str | None = None) -> dict[str, np.ndarray]:
    """{variable name: array} of the TF checkpoint ``prefix`` (``.index`` + ``.data-*``).

    Uses ``tf.train.load_checkpoint`` in this interpreter when TensorFlow imports, else runs it in
    ``tf_python`` (a Python with TensorFlow, e.g. ``.venv-tf/bin/python``; also from the
    ``OMEGANET_TF_PYTHON`` environment variable).
    """
    checkpoint_files(prefix)
    tf_python = tf_python or os.environ.get("OMEGANET_TF_PYTHON")
    if not tf_python:
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise CheckpointError(
                f"TF checkpoint {prefix}: reading it needs TensorFlow, which is not installed here; "
                "pip install 'omeganet_ros[official]' or pass --tf-python PATH (a Python with TensorFlow)") from exc
        reader = tf.train.load_checkpoint(str(prefix))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    with tempfile.TemporaryDirectory(prefix="omeganet_import_") as tmp:
        arrays, names = Path(tmp) / "variables.npz", Path(tmp) / "names.json"
        result = subprocess.run([tf_python, "-c", _DUMP_SCRIPT, str(prefix), str(arrays), str(names)],
                                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if result.returncode != 0:
            raise CheckpointError(f"TF checkpoint {prefix}: {tf_python} could not read it: "
                                  f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
        order = json.loads(names.read_text())
        with np.load(arrays, allow_pickle=False) as data:
            return {name: data[f"v{i}"] for i, name in enumerate(order)}


def sha256_of(paths: list[Path]) -> str:
    """SHA-256 over the files' bytes, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def import_official(prefix, out, *, size: tuple[int, int] | None = None, tau: float = AUTHORS_TAU,
                    tf_python: str | None = None) -> tuple[Path, dict]:
    """Convert the authors' TF checkpoint ``prefix`` into an ``omeganet_ros.checkpoint`` at ``out``.

    ``size``: network input (W, H) recorded in the checkpoint; default 640×192 for a complete
    ΩNet, 1024×320 for a DSNet + CameraNet (``load_only_baseline``) release. ``tau``: the motion
    threshold recorded (the engine's default τ for this file). Returns (path, import report).
    """
    prefix = Path(prefix)
    index, shards = checkpoint_files(prefix)
    variables = read_tf_checkpoint(prefix, tf_python)
    networks, report = networks_from_variables(variables, source=f"TF checkpoint {prefix}")
    if size is None:
        size = RELEASE_SIZES["omeganet" if "ofnet" in networks else "baseline"]
    if report["semantic_classes"] != len(CLASS_NAMES):
        raise CheckpointError(f"TF checkpoint {prefix}: semantic head has {report['semantic_classes']} classes, "
                              f"expected the {len(CLASS_NAMES)} Cityscapes train classes")
    provenance = {
        "source": "authors' TensorFlow release (omeganet-import-official)",
        "source_file": str(prefix.resolve()),
        "source_files": [p.name for p in [index, *shards]],
        "sha256": sha256_of([index, *shards]),
        "license": AUTHORS_TERMS,
        "motion_threshold": float(tau),
        "import": report,
    }
    path = save_checkpoint(out, networks, input_size=size, provenance=provenance)
    return path, report
