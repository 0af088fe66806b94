"""omeganet-teacher: label a recording with the semantic teacher (Cityscapes ESPNet): trainId PNGs and colour previews.

::

    omeganet-teacher --input frames/ --out labels/
    omeganet-teacher --input drive.mp4 --out labels/ --save-images
    omeganet-teacher --input run_bag/ --topic /camera/image_raw --out labels/

Input: a folder of images (sorted by name), a video file, or a ROS 2 bag
(folder, .db3 or .mcap) with ``--topic`` — read exactly as ``omeganet-infer``
reads them (``omeganet_ros.data.sources.open_source``). Output, a sequence
folder (``omeganet_ros.data.layout``)::

    semantic/NNNNNN.png         uint8 Cityscapes trainIds at the input resolution, 255 = void
                                (and pixels under --min-confidence)
    semantic_color/NNNNNN.png   the labels in the Cityscapes palette (void black)
    confidence/NNNNNN.png       uint8 teacher confidence × 255
    images/NNNNNN.png           the input frames (with --save-images)
    meta.json                   teacher (weights, sha256), frame counts, skipped frames, timing

NNNNNN is the frame's index in the input (unreadable frames are skipped, counted,
and take no index), as in ``omeganet-infer``'s output.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .infer import add_input_arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omeganet-teacher", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(p)
    p.add_argument("--weights", default="espnet",
                   help="teacher: 'espnet' (the bundled Cityscapes ESPNet, default) or an ESPNet weights file")
    p.add_argument("--input-width", type=int, default=1024,
                   help="network input width in pixels (height from the frame's aspect ratio); default 1024, as trained")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="label pixels whose confidence is below this as 255 (void); default 0 (keep all)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    return p


def run(args) -> dict:
    import cv2
    import torch
    from tqdm import tqdm

    from ..classes import IGNORE_ID, colorize
    from ..data.layout import SequenceFolder, frame_name
    from ..data.sources import open_source
    from ..teacher import load_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0.0 <= args.min_confidence <= 1.0:
        raise ValueError(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
    source = open_source(args.input, topic=args.topic, rate=args.rate)
    teacher = load_teacher(args.weights, device=args.device, input_width=args.input_width)
    out_dir = Path(args.out)
    folder = SequenceFolder(out_dir)
    for sub in ("semantic_color", "confidence"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    total = len(source) or None
    if args.max_frames is not None and total is not None:
        total = min(total, args.max_frames)
    timings, written = [], 0
    progress = tqdm(total=total, unit="frame", desc="omeganet-teacher", disable=args.quiet, file=sys.stderr)
    for index, _stamp, frame in source:
        if args.max_frames is not None and index >= args.max_frames:
            break
        started = time.perf_counter()
        labels, confidence = teacher.labels(frame)
        timings.append((time.perf_counter() - started) * 1000.0)
        if args.min_confidence > 0:
            labels = np.where(confidence < args.min_confidence, np.uint8(IGNORE_ID), labels)
        folder.write(index, semantic=labels, images=frame if args.save_images else None)
        name = frame_name(index) + ".png"
        cv2.imwrite(str(out_dir / "semantic_color" / name), cv2.cvtColor(colorize(labels), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out_dir / "confidence" / name), np.clip(np.rint(confidence * 255.0), 0, 255).astype(np.uint8))
        written += 1
        progress.update(1)
        progress.set_postfix(ms=f"{timings[-1]:.0f}", skipped=source.skipped)
    progress.close()
    if not written:
        raise ValueError(f"input {args.input}: no readable frames ({source.skipped} skipped)")
    summary = {
        "generator": "omeganet-teacher",
        "input": str(args.input),
        "topic": args.topic,
        "classes": "cityscapes_train_ids",
        "min_confidence": args.min_confidence,
        "frames_written": written,
        "frames_skipped": source.skipped,
        "skipped_reasons": source.errors[:20],
        "ms_per_frame_median": float(np.median(timings)),
        **teacher.describe(),
    }
    folder.write_meta(summary)
    return summary


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f"omeganet-teacher: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("frames_written", "frames_skipped", "ms_per_frame_median", "weights_sha256")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
