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
    images/NNNNNN.png    the input frames (with --save-images)
    poses.txt            camera-to-world poses chained from the ego-motion, first frame = identity,
                         "index r11 r12 r13 t1 … t3" (KITTI odometry with a leading frame index)
    intrinsics.txt       3×3 K in output pixels: the given one, or the median of CamNet's estimates
    stamps.txt           "index stamp_seconds" per frame
    meta.json            engine settings, checkpoint, depth_metric, frame counts, skipped frames

NNNNNN is the frame's index in the input (unreadable frames are skipped,
counted, and do not take an index). In the default (paper) mode the first and
last frames have no predictions (they lack a neighbour); their poses are still
written.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """'640x192' → (640, 192)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x192, got {text!r}") from None
    return w, h


def parse_intrinsics(text: str) -> np.ndarray:
    """'fx,fy,cx,cy' or a file holding a 3×3 matrix → 3×3 K."""
    path = Path(text)
    if path.is_file():
        values = np.loadtxt(path, dtype=np.float64).reshape(-1)
        if values.size != 9:
            raise argparse.ArgumentTypeError(f"{path}: expected a 3×3 matrix, got {values.size} numbers")
        return values.reshape(3, 3)
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"intrinsics must be 'fx,fy,cx,cy' or a file with a 3×3 K, got {text!r}") from None
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)


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
    p = argparse.ArgumentParser(prog="omeganet-infer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="omeganet_ros checkpoint (.pt); default: the installed reference model, else random weights "
                        "(with a warning); 'random' forces random weights")
    add_input_arguments(p)
    p.add_argument("--size", type=parse_size, default=None,
                   help="network input WxH (default: the size the checkpoint was trained at; 640x192 for random weights)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (slow start, faster frames)")
    p.add_argument("--output-resolution", default="input", choices=["input", "network"])
    p.add_argument("--causal", action="store_true", help="predict each frame from it and the previous one (no look-ahead)")
    p.add_argument("--intrinsics", type=parse_intrinsics, default=None,
                   help="known camera intrinsics of the input frames: 'fx,fy,cx,cy' or a 3×3 text file")
    p.add_argument("--depth-scale", type=float, default=None, help="metres per network depth unit (makes depth metric)")
    return p


def write_outputs(folder, index: int, out, causal: bool, frame=None) -> None:
    """One frame's predictions into the sequence folder."""
    flows = {"flow_bw": out.flow} if causal else {"flow_fw": out.flow}
    folder.write(index, depth=out.depth, semantic=out.semantic, motion=out.motion_mask.astype(np.uint8),
                 images=frame, **flows)


def run(args) -> dict:
    from tqdm import tqdm

    from ..data.layout import SequenceFolder
    from ..data.sources import open_source
    from ..engine import SceneEngine

    source = open_source(args.input, topic=args.topic, rate=args.rate)
    engine = SceneEngine(checkpoint=args.checkpoint, device=args.device, precision=args.precision, size=args.size,
                         compile=args.compile, output_resolution=args.output_resolution, causal=args.causal,
                         depth_scale=args.depth_scale, num_threads=args.threads)
    out_dir = Path(args.out)
    folder = SequenceFolder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    stamps: dict[int, float] = {}
    pending: dict[float, tuple[int, np.ndarray]] = {}  # stamp → (index, frame) waiting for its outputs
    from_previous: dict[int, np.ndarray] = {}           # index → camera motion previous frame → this one
    intrinsics: list[np.ndarray] = []
    timings: list[float] = []
    written = 0
    total = len(source) or None
    if args.max_frames is not None and total is not None:
        total = min(total, args.max_frames)
    last_index = None
    progress = tqdm(total=total, unit="frame", desc="omeganet-infer", disable=args.quiet, file=sys.stderr)
    for index, stamp, frame in source:
        if args.max_frames is not None and index >= args.max_frames:
            break
        stamps[index] = stamp
        pending[stamp] = (index, frame if args.save_images else None)
        out = engine.push(frame, stamp, K=args.intrinsics)
        progress.update(1)
        last_index = index
        if out is None:
            continue
        out_index, out_frame = pending.pop(out.stamp)
        for old in [s for s in pending if s < out.stamp]:
            del pending[old]
        write_outputs(folder, out_index, out, args.causal, out_frame)
        from_previous[out_index] = out.motion_from_previous
        if not args.causal:  # the ego-motion reaches the next frame, which has no outputs of its own at the end
            from_previous[out_index + 1] = out.ego_motion
        intrinsics.append(out.intrinsics)
        timings.append(out.timings_ms["total"])
        written += 1
        progress.set_postfix(ms=f"{out.timings_ms['total']:.0f}", skipped=source.skipped)
    progress.close()
    if last_index is None:
        raise ValueError(f"input {args.input}: no readable frames ({source.skipped} skipped)")

    # Trajectory over every input frame: identity at the first, chained with previous→this motions.
    indices = sorted(stamps)
    pose = np.eye(4)
    lines = []
    for index in indices:
        if index in from_previous and index != indices[0]:
            pose = pose @ from_previous[index]
        lines.append(f"{index} " + " ".join(f"{v:.9e}" for v in pose[:3, :4].reshape(-1)))
    (out_dir / "poses.txt").write_text("\n".join(lines) + "\n")
    (out_dir / "stamps.txt").write_text("".join(f"{i} {stamps[i]:.9f}\n" for i in indices))
    if intrinsics:
        folder.write_intrinsics(np.median(np.stack(intrinsics), axis=0))

    summary = {
        "generator": "omeganet-infer",
        "input": str(args.input),
        "topic": args.topic,
        "depth_metric": engine.depth_is_metric,
        "depth_scale": engine.depth_scale,
        "depth_units": "metres" if engine.depth_is_metric else "relative (network units)",
        "flow": "flow_bw (frame → previous)" if args.causal else "flow_fw (frame → next)",
        "intrinsics": "given" if args.intrinsics is not None else "median of CamNet estimates",
        "classes": "cityscapes_train_ids",
        "frames_read": len(indices),
        "frames_written": written,
        "frames_skipped": source.skipped,
        "skipped_reasons": source.errors[:20],
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
