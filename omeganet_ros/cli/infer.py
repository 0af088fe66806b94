"""omeganet-infer: run the scene engine over a recording and write its predictions as a sequence folder.

::

    omeganet-infer --checkpoint model.pt --input frames/ --out pred/
    omeganet-infer --input drive.mp4 --out pred/ --size 640x192 --precision bf16
    omeganet-infer --input run_bag/ --topic /camera/image_raw --out pred/

Input: a folder of images (sorted by name), a video file, or a ROS 2 bag
(folder, .db3 or .mcap) with ``--topic``. Output (``omeganet_ros.data.layout``)::

    depth/NNNNNN.npy     float32 H×W; metres when meta.json says "depth_metric": true, else relative
    flow_fw/NNNNNN.npy   float32 H×W×2 pixels, frame → next (flow_bw/, frame → previous, with --causal)
    semantic/NNNNNN.png  uint8 Cityscapes trainIds
    motion/NNNNNN.png    uint8 0/1 motion mask
    instance/NNNNNN.png  uint16 instance ids, 0 = none (Moreau checkpoints, e.g. --checkpoint moreau)
    images/NNNNNN.png    the input frames (with --save-images)
    poses.txt            camera-to-world poses chained from the ego-motion, first frame = identity,
                         "index r11 r12 r13 t1 … t3" (KITTI odometry with a leading frame index);
                         metres with --depth-scale / --camera-height

    intrinsics.txt       3×3 K in output pixels: the given one, or the median of CamNet's estimates
    stamps.txt           "index stamp_seconds" per frame
    meta.json            engine settings, checkpoint, depth_metric, frame counts, skipped frames

NNNNNN is the frame's index in the input (unreadable frames are skipped,
counted, and do not take an index). In the default (paper) mode the first and
last frames have no predictions (they lack a neighbour); their poses are still
written. ``--outputs depth,semantic`` writes fewer layers (a warning comes before
a run would write more than 2 GB). Frames go through :class:`omeganet_ros.pipeline.ScenePipeline`,
as in the node: a scene cut (an edited video) or a stamp going back restarts the
frame window (counted in meta.json's ``window_restarts``).

A Moreau et al. checkpoint (``--checkpoint moreau``: the packaged one) gives depth, poses and instances;
it has no flow, semantics or motion, so those layers are not written (meta.json lists them under
``outputs_absent``), and with no ``--intrinsics`` intrinsics.txt holds the KITTI-like default K.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..runtime import prefer_passive_openmp

prefer_passive_openmp()  # before anything loads torch

import numpy as np  # noqa: E402

from ..backends import BACKEND_CHOICES, DEFAULT_BACKEND  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    """'640x192' → (640, 192)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x192, got {text!r}") from None
    return w, h


def parse_intrinsics(text: str) -> np.ndarray:
    """'fx,fy,cx,cy', a 3×3 text file or a KITTI calibration file (``calib.txt[:P2]``) → 3×3 K."""
    from ..data.intrinsics import read_intrinsics

    try:
        return read_intrinsics(text)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """The recording-reading options shared by the tools that go over one recording (this one, omeganet-teacher)."""
    p.add_argument("--input", required=True, help="image folder, video file, or ROS 2 bag (with --topic)")
    p.add_argument("--out", required=True, help="output sequence folder (created)")
    p.add_argument("--topic", default=None, help="image topic when --input is a ROS 2 bag")
    p.add_argument("--rate", type=float, default=10.0, help="frame rate assumed for image folders (stamps), Hz")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many input frames")
    p.add_argument("--save-images", action="store_true", help="also write the input frames to images/")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from ..pose_proxy import ROTATION_FROM_FLOW_DEFAULT  # loads torch and OpenCV, as the run does anyway

    p = argparse.ArgumentParser(prog="omeganet-infer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="omeganet_ros checkpoint (.pt); default: the installed reference model, else random weights "
                        "(with a warning); 'random' forces random weights; 'moreau' the packaged Moreau et al. model")
    add_input_arguments(p)
    p.add_argument("--size", type=parse_size, default=None,
                   help="network input WxH (default: the size the checkpoint was trained at; 640x192 for random weights)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"],
                   help="auto: bf16 on a CPU with native bf16 (AMX or AVX-512-BF16), else fp32; int8: --backend "
                        "openvino only (quantized at the first export, with NNCF; flow ~2.6 px off: not recommended)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (slow start, faster frames)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKEND_CHOICES,
                   help="inference backend (ΩNet): auto = the fastest installed (openvino, else torch); the others run "
                        "graphs exported once and cached in ~/.cache/omeganet_ros")
    p.add_argument("--output-resolution", default="input", choices=["input", "network"])
    p.add_argument("--causal", action="store_true", help="predict each frame from it and the previous one (no look-ahead)")
    p.add_argument("--rotation-from-flow", action=argparse.BooleanOptionalAction,
                   default=ROTATION_FROM_FLOW_DEFAULT,
                   help="ΩNet: ego-motion rotation fitted to the optical flow on the depth (PnP-RANSAC), CamNet's "
                        "translation kept (the node's rotation_from_flow; default: on); --no-rotation-from-flow: "
                        "CamNet's rotation. No effect on the Moreau et al. model (no optical flow)")
    p.add_argument("--intrinsics", type=parse_intrinsics, default=None,
                   help="known camera intrinsics of the input frames: 'fx,fy,cx,cy', a 3×3 text file, or a KITTI "
                        "calib.txt / calib_cam_to_cam.txt (FILE:P0 picks a camera; default P2 / P_rect_02)")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--depth-scale", type=float, default=None, help="metres per network depth unit (makes depth metric)")
    scale.add_argument("--camera-height", type=float, default=None, metavar="M",
                       help="metric depth from the camera's height above the road in metres (ground-plane fit per frame)")
    p.add_argument("--outputs", type=parse_outputs, default=OUTPUT_LAYERS, metavar="LAYERS",
                   help=f"layers to write, comma-separated (default: {','.join(OUTPUT_LAYERS)})")
    p.add_argument("--scene-cut-threshold", type=float, default=0.5,
                   help="colour-histogram correlation below which a frame starts a new scene (0: never)")
    return p


OUTPUT_LAYERS = ("depth", "flow", "semantic", "motion", "instance")
LARGE_RUN_BYTES = 2 * 1024 ** 3  # warn before writing more than this


def parse_outputs(text: str) -> tuple[str, ...]:
    """'depth,semantic' → the output layers to write (a subset of OUTPUT_LAYERS)."""
    layers = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in layers if v not in OUTPUT_LAYERS]
    if unknown or not layers:
        raise argparse.ArgumentTypeError(f"--outputs: unknown layer(s) {unknown or text!r}; choose from "
                                         f"{','.join(OUTPUT_LAYERS)}")
    return layers


def write_outputs(folder, index: int, out, causal: bool, frame=None, layers=OUTPUT_LAYERS) -> None:
    """One frame's predictions (the chosen ``layers``) into the sequence folder."""
    arrays = {"depth": out.depth, "semantic": out.semantic,
              "motion": None if out.motion_mask is None else out.motion_mask.astype(np.uint8),
              ("flow_bw" if causal else "flow_fw"): out.flow, "instance": out.instance}
    # None: the model does not produce that output (ΩNet: instances; Moreau: flow, semantics, motion).
    chosen = {k: v for k, v in arrays.items() if k.split("_")[0] in layers and v is not None}
    folder.write(index, images=frame, **chosen)


def _bytes_per_frame(out, layers) -> int:
    h, w = out.depth.shape
    per_pixel = {"depth": 4, "flow": 8, "semantic": 1, "motion": 1, "instance": 2}
    return h * w * sum(per_pixel[k] for k in layers)


def _pose_lines(poses: dict[int, np.ndarray]) -> str:
    return "".join(f"{index} " + " ".join(f"{v:.9e}" for v in pose[:3, :4].reshape(-1)) + "\n"
                   for index, pose in sorted(poses.items()))


def run(args) -> dict:
    from tqdm import tqdm

    from ..checkpoint import load_checkpoint
    from ..train.lineage import untrained_outputs
    from ..data.layout import SequenceFolder
    from ..data.sources import open_source
    from ..moreau_engine import MoreauEngine, absent_outputs, is_moreau_checkpoint, open_engine, resolve_checkpoint
    from ..pipeline import ScenePipeline
    from ..scale_recovery import ScaleRecovery

    source = open_source(args.input, topic=args.topic, rate=args.rate)
    options = dict(device=args.device, precision=args.precision, size=args.size,
                   output_resolution=args.output_resolution, causal=args.causal, num_threads=args.threads)
    if args.compile:
        options["compile"] = True
    checkpoint = resolve_checkpoint(args.checkpoint)
    if checkpoint in (None, "random") or not is_moreau_checkpoint(checkpoint):
        options.update(backend=args.backend, rotation_from_flow=args.rotation_from_flow)
    elif args.backend not in ("auto", "torch"):
        raise ValueError(f"--backend {args.backend} applies to ΩNet only; the Moreau et al. model runs on torch")
    engine = open_engine(checkpoint, **options)
    moreau = isinstance(engine, MoreauEngine)
    if moreau and args.camera_height is not None:
        raise ValueError("--camera-height needs road pixels from semantics, which the Moreau model does not "
                         "estimate; use --depth-scale")
    if args.depth_scale is not None:
        scale = ScaleRecovery("fixed", fixed_scale=args.depth_scale)
    elif args.camera_height is not None:
        scale = ScaleRecovery("camera_height", camera_height=args.camera_height)
    else:
        scale = ScaleRecovery("none")
    pipeline = ScenePipeline(engine, scale_recovery=scale, scene_cut_threshold=args.scene_cut_threshold,
                             keep_rgb=args.save_images)
    untrained = None if engine.random_weights else untrained_outputs(load_checkpoint(engine.checkpoint_path).provenance)
    if untrained:
        logging.getLogger("omeganet-infer").warning(
            "checkpoint %s has untrained networks: its %s are meaningless (random weights)",
            engine.checkpoint_path, ", ".join(untrained))
    absent = absent_outputs(engine)  # e.g. Moreau: flow, semantic, motion; ΩNet: instance
    layers = tuple(layer for layer in args.outputs if layer not in absent)
    out_dir = Path(args.out)
    folder = SequenceFolder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    stamps: dict[int, float] = {}
    poses: dict[int, np.ndarray] = {}  # frame index → camera pose (optical frame of the first posed frame)
    intrinsics: list[np.ndarray] = []
    timings: list[float] = []
    written = metric_frames = 0
    total = len(source) or None
    if args.max_frames is not None and total is not None:
        total = min(total, args.max_frames)
    warned_size = False
    progress = tqdm(total=total, unit="frame", desc="omeganet-infer", disable=args.quiet, file=sys.stderr)
    for index, stamp, frame in source:
        if args.max_frames is not None and index >= args.max_frames:
            break
        stamps[index] = stamp
        result = pipeline.push(frame, stamp, K=args.intrinsics, tag=index)
        progress.update(1)
        if result is None:
            continue
        out = result.outputs
        write_outputs(folder, result.frame.tag, out, args.causal, result.frame.rgb, layers)
        if result.previous is not None and result.previous.tag not in poses:
            poses[result.previous.tag] = result.pose @ np.linalg.inv(out.motion_from_previous)
        poses[result.frame.tag] = result.pose
        intrinsics.append(out.intrinsics)
        timings.append(out.timings_ms["total"])
        written += 1
        metric_frames += result.metric
        if not warned_size and total and _bytes_per_frame(out, layers) * total > LARGE_RUN_BYTES:
            warned_size = True
            logging.getLogger("omeganet-infer").warning(
                "about %.1f GB will be written (%.1f MB per frame); --outputs depth,semantic writes fewer layers",
                _bytes_per_frame(out, layers) * total / 1e9, _bytes_per_frame(out, layers) / 1e6)
        progress.set_postfix(ms=f"{out.timings_ms['total']:.0f}", skipped=source.skipped)
    progress.close()
    if not stamps:
        raise ValueError(f"input {args.input}: no readable frames ({source.skipped} skipped)")
    if written == 0:
        needed = 2 if args.causal else 3
        raise ValueError(f"input {args.input}: {len(stamps)} readable frame(s) gave no output: the model needs "
                         f"{needed} consecutive frames of one scene" + ("" if args.causal else
                         " (with 2 frames, --causal answers for the second)"))
    final = pipeline.final_pose()
    if final is not None:
        poses.setdefault(final[0].tag, final[1])

    (out_dir / "poses.txt").write_text(_pose_lines(poses))
    (out_dir / "stamps.txt").write_text("".join(f"{i} {stamps[i]:.9f}\n" for i in sorted(stamps)))
    if intrinsics:
        folder.write_intrinsics(np.median(np.stack(intrinsics), axis=0))

    metric = metric_frames == written
    summary = {
        "generator": "omeganet-infer",
        "input": str(args.input),
        "topic": args.topic,
        "outputs": list(layers),
        "depth_metric": metric,
        "depth_scale": pipeline.last_result.scale,
        "depth_units": "metres" if metric else ("relative (network units)" if metric_frames == 0 else
                                                 f"metres on {metric_frames} of {written} frames (scale recovery)"),
        "scale_recovery": scale.mode,
        "flow": "flow_bw (frame → previous)" if args.causal else "flow_fw (frame → next)",
        "intrinsics": "given" if args.intrinsics is not None else
                      ("default (KITTI-like, the Moreau model estimates none)" if moreau else "median of CamNet estimates"),
        "model": "moreau" if moreau else "omeganet",
        "outputs_absent": [layer for layer in args.outputs if layer in absent],
        "classes": "cityscapes_train_ids",
        "frames_read": len(stamps),
        "frames_written": written,
        "frames_posed": len(poses),
        "frames_skipped": source.skipped,
        "skipped_reasons": source.errors[:20],
        "window_restarts": dict(pipeline.restarts),
        "untrained_outputs": untrained,
        "ms_per_frame_median": float(np.median(timings)) if timings else None,
        "engine": engine.describe(),
    }
    folder.write_meta(summary)
    return summary


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except (OSError, ValueError) as exc:
        print(f"omeganet-infer: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("frames_read", "frames_written", "frames_skipped", "depth_metric",
                                              "ms_per_frame_median")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
