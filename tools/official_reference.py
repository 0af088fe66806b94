"""Run the authors' ΩNet TensorFlow graph with random weights: the reference of the equivalence test.

Run with the TensorFlow venv's interpreter (``.venv-tf``, see ``.ci/official_equivalence.sh``),
never with the package's ``.venv``::

    .venv-tf/bin/python tools/official_reference.py \
        --official ../shared/reference/omeganet-official \
        --frames A.png B.png C.png --out build/official_ref

It imports the authors' code from ``--official`` (Apache-2.0, unmodified), builds
``networks.complete_network.OmegaNet`` at 640×192 as ``single_inference.py``
does, gives every variable random values whose scale keeps the signal alive
through depth (He-normal kernels, random biases, random BatchNorm betas, moving
means and variances), saves them with ``tf.train.Saver(var_list=
network.get_network_params())`` as the release was saved, runs the graph on
three frames resized to 640×192 and writes:

* ``OUT/omeganet.index`` + ``OUT/omeganet.data-00000-of-00001``: the checkpoint;
* ``OUT/omeganet_baseline.*`` (with ``--baseline``): the same graph built with
  ``load_only_baseline=True`` (DSNet + CameraNet only, like the 1024×320 releases);
* ``OUT/reference.npz``: the three input frames (1×H×W×3 uint8; the graph gets them / 255)
  and every output, NHWC as TensorFlow gives them (the ``outputs`` dict in :func:`main`), and
  each output again as ``NAME_perturbed`` from inputs scaled by 1 − 2⁻²⁰ (how much the
  authors' graph itself moves under rounding-level changes);
* ``OUT/reference.json``: variable count, value count, τ, seed, shapes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def import_tf1_with_contrib():
    """TensorFlow 2.15 in graph mode with the ``tf.contrib.slim`` / ``tf.contrib.layers`` the authors' TF 1.8 code imports."""
    import tensorflow as tf
    import tf_keras.src.legacy_tf_layers as legacy_layers
    import tf_slim

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    sys.modules["tf_keras.legacy_tf_layers"] = legacy_layers
    for sub in ("base", "core", "convolutional", "normalization", "pooling", "variable_scope_shim"):
        module = __import__(f"tf_keras.src.legacy_tf_layers.{sub}", fromlist=[sub])
        sys.modules[f"tf_keras.legacy_tf_layers.{sub}"] = module
    contrib = types.ModuleType("tensorflow.contrib")
    contrib.slim = tf_slim
    contrib.layers = tf_slim.layers
    sys.modules["tensorflow.contrib"] = contrib
    sys.modules["tensorflow.contrib.slim"] = tf_slim
    tf1.contrib = contrib
    sys.modules["tensorflow"] = tf1
    return tf1


def read_frame(path: Path, width: int, height: int) -> np.ndarray:
    """An image file → 1×H×W×3 uint8 RGB at width×height (cv2.INTER_AREA).

    Resized and kept as 8-bit, so the package's engine, which takes uint8 frames, sees exactly the
    pixels the TensorFlow graph sees (as float32 / 255).
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"official_reference: cannot read image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)[None]


def random_value(name: str, shape, rng: np.random.Generator) -> np.ndarray:
    """A random value for one variable, by its role (kernel, bias, BatchNorm beta / moving statistics)."""
    shape = tuple(int(s) for s in shape)
    if name.endswith("moving_variance"):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith("moving_mean") or name.endswith("beta"):
        return rng.normal(0.0, 0.2, shape)
    if name.endswith("biases") or name.endswith("bias"):
        return rng.normal(0.0, 0.1, shape)
    if len(shape) == 4:  # HWIO kernel: He-normal
        fan_in = shape[0] * shape[1] * shape[2]
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape) * prediction_gain(name)
    raise SystemExit(f"official_reference: no rule for variable {name} with shape {shape}")


def prediction_gain(name: str) -> float:
    """Scale of a prediction layer's He-normal kernel, so its output stays where the output is informative.

    Full-scale disparity heads saturate their sigmoid (every disparity 10.01), and a full-scale pose
    head moves the camera so far that the rigid flow dwarfs the optical flow and every motion
    probability is ~1; smaller prediction kernels keep these outputs varied across the image.
    """
    if "/disparity_estimator/disparity/" in name:
        return 0.3
    if "/pose_net/pred/" in name or "/pose_net/intrinsics/" in name:
        return 0.1
    return 1.0


def assign_all(tf1, sess, values: dict) -> None:
    """Give each variable its value in one session run (one assign op per variable, fed through placeholders)."""
    feeds, ops = {}, []
    for var, value in values.items():
        placeholder = tf1.placeholder(var.dtype.base_dtype, shape=var.shape)
        ops.append(var.assign(placeholder))
        feeds[placeholder] = np.asarray(value, dtype=np.float32)
    sess.run(ops, feed_dict=feeds)


def build(tf1, official: Path, height: int, width: int, tau: float, load_only_baseline: bool):
    """Build OmegaNet as single_inference.py does; returns (network, placeholders, training flag)."""
    sys.path.insert(0, str(official))
    from networks import complete_network, general_network  # the authors' code

    placeholders = {name: tf1.placeholder(tf1.float32, shape=(1, height, width, 3), name=name)
                    for name in ("src_img_1", "tgt_img", "src_img_2")}
    training = tf1.placeholder(tf1.bool)
    params = general_network.network_parameters(height=height, width=width,
                                                load_only_baseline=load_only_baseline, tau=tau)
    network = complete_network.OmegaNet(placeholders, is_training=training, params=params)
    network.build()
    return network, placeholders, training


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, type=Path, help="the authors' code (omeganet-official)")
    p.add_argument("--frames", nargs=3, required=True, type=Path, help="frames t−1, t, t+1")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--tau", type=float, default=0.5, help="τ of the motion mask")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--baseline", action="store_true",
                   help="also save a load_only_baseline (DSNet + CameraNet) checkpoint")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tf1 = import_tf1_with_contrib()
    rng = np.random.default_rng(args.seed)
    frames = [read_frame(f, args.width, args.height) for f in args.frames]

    network, ph, training = build(tf1, args.official, args.height, args.width, args.tau, False)
    saved = network.get_network_params()
    # The mask's probability map is not kept by the authors' graph: build it once more from the same tensors.
    rigid_flow = getattr(network, "_OmegaNet__sflow_src2_tgt")
    probability = network.build_moving_probability_mask(network.optical_flow, rigid_flow)
    base = network.baselineNet
    outputs = {
        "disp": network.disp,                                  # 1×H×W×1 normalised, resized disparity
        "depth": base.depth_tgt,                               # 1×H×W
        "disp_levels_0": base.pred_disp_tgt[0],                # 1×H/2×W/2×1 raw finest disparity
        "disp_levels_4": base.pred_disp_tgt[4],                # 1×H/32×W/32×1 raw coarsest
        "semantic_logits_half": network.semantic_logits,       # 1×H/2×W/2×C
        "semantic_logits": base.semantic_tgt,                  # 1×H×W×C up-sampled
        "semantic": network.semantic,                          # 1×H×W×1 argmax (float)
        "pose": base.pose,                                     # 1×2×6 (tgt→src1, tgt→src2)
        "intrinsics": base.intrinsics,                         # 1×1×3×3
        "optical_flow": network.optical_flow,                  # 1×H×W×2 tgt→src2
        "rigid_flow": rigid_flow,                              # 1×H×W×2 tgt→src2
        "dynamic_prior": getattr(network, "_OmegaNet__priors"),  # 1×H×W×1
        "motion_probability": probability,                     # 1×H×W×1
        "motion_mask": network.motion_mask,                    # 1×H×W×1
    }
    with tf1.Session() as sess:
        assign_all(tf1, sess, {var: random_value(var.op.name, var.shape, rng) for var in tf1.global_variables()})
        saver = tf1.train.Saver(var_list=saved)
        saver.save(sess, str(args.out / "omeganet"), write_meta_graph=False)
        inputs = [f.astype(np.float32) / np.float32(255.0) for f in frames]
        feed = {training: False, ph["src_img_1"]: inputs[0], ph["tgt_img"]: inputs[1], ph["src_img_2"]: inputs[2]}
        values = sess.run(outputs, feed_dict=feed)
        # The authors' graph against itself with every input pixel scaled by (1 − 2⁻²⁰): how far
        # rounding-level changes move each output (the yardstick of the equivalence test).
        nudged = {key: (value * np.float32(1.0 - 2.0 ** -20) if key is not training else value)
                  for key, value in feed.items()}
        perturbed = sess.run(outputs, feed_dict=nudged)
        if args.baseline:
            baseline_values = {v.op.name: sess.run(v) for v in saved if "superflow" not in v.op.name}
    np.savez_compressed(args.out / "reference.npz", src_img_1=frames[0], tgt_img=frames[1], src_img_2=frames[2],
                        **{k: np.asarray(v) for k, v in values.items()},
                        **{f"{k}_perturbed": np.asarray(v) for k, v in perturbed.items()})
    record = {
        "variables": len(saved),
        "values": int(sum(np.prod(v.shape.as_list()) for v in saved)),
        "height": args.height, "width": args.width, "tau": args.tau, "seed": args.seed,
        "frames": [str(f) for f in args.frames],
        "outputs": {k: list(np.shape(v)) for k, v in values.items()},
        "stats": {k: {"min": float(np.min(v)), "max": float(np.max(v)), "std": float(np.std(v)),
                      "self_difference": float(np.max(np.abs(np.asarray(v, np.float64) - perturbed[k])))}
                  for k, v in values.items()},
    }
    if args.baseline:
        tf1.reset_default_graph()
        network, ph, training = build(tf1, args.official, args.height, args.width, args.tau, True)
        saved = network.get_network_params()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            assign_all(tf1, sess, {var: baseline_values[var.op.name] for var in saved})
            tf1.train.Saver(var_list=saved).save(sess, str(args.out / "omeganet_baseline"), write_meta_graph=False)
        record["baseline_variables"] = len(saved)
    (args.out / "reference.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({k: record[k] for k in ("variables", "values", "stats")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
