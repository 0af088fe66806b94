"""``omeganet-eval``: the papers' benchmark protocols on folders, KITTI/Cityscapes files or ROS 2 bags.

Examples::

    omeganet-eval depth --pred out/ --gt synth/ --json
    omeganet-eval flow --pred preds/ --gt kitti_flow/ --markdown
    omeganet-eval odometry --pred results/09.txt --gt poses/09.txt --align 7dof
    omeganet-eval semantic --pred run.mcap --topic /omeganet/semantic --gt synth.mcap
    omeganet-eval instance --pred out/ --gt synth/      # class-agnostic PQ on thing instances (IoU > 0.5)
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from omeganet_ros.evaluate.runner import METRICS, TASKS, evaluate_paths, markdown_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omeganet-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=TASKS, help="the protocol to run")
    parser.add_argument("--pred", required=True, help="predictions: sequence folder, files, KITTI folder or bag")
    parser.add_argument("--gt", required=True, help="ground truth: sequence folder, files, KITTI folder or bag")
    parser.add_argument("--topic", help="topic of the predictions when --pred is a bag")
    parser.add_argument("--gt-topic", help="topic of the ground truth when --gt is a bag (default /gt/<task>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the metrics")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--align", choices=("6dof", "7dof", "scale", "scale_7dof", "none"), default="7dof",
                        help="odometry: alignment of the prediction to the ground truth (default 7dof)")
    scaling = parser.add_mutually_exclusive_group()
    scaling.add_argument("--median-scaling", dest="median_scaling", action="store_true", default=None,
                         help="depth: per-image median scaling (for up-to-scale monocular depth; the default "
                              "unless the prediction folder's meta.json says depth_metric)")
    scaling.add_argument("--metric", dest="median_scaling", action="store_false",
                         help="depth: predictions are metric (or already scaled): no median scaling")
    parser.add_argument("--crop", choices=("garg", "eigen", "none"), default="garg", help="depth: evaluation crop")
    parser.add_argument("--disparity", action="store_true", help="depth: predictions are inverse depth")
    parser.add_argument("--cam", type=int, default=2, choices=(0, 1, 2, 3), help="KITTI raw: camera (default 2)")
    parser.add_argument("--label-format", choices=("auto", "trainids", "labelids", "color"), default="auto",
                        help="semantic: how prediction PNGs encode classes")
    parser.add_argument("--gt-label-format", choices=("auto", "trainids", "labelids", "color"), default="auto",
                        help="semantic: how ground-truth PNGs encode classes (KITTI semantics: labelids)")
    parser.add_argument("--motion-gt", choices=("auto", "nonzero"), default="auto",
                        help="motion: ground truth 0/1 (255 = ignore; 0/255 masks accepted) or any non-zero = moving "
                             "(KITTI 2015 obj_map)")
    return parser


def _clean(value):
    """JSON-safe: NaN/inf → None, recursively."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = evaluate_paths(
            args.task, args.pred, args.gt, args.topic, args.gt_topic,
            median_scaling=args.median_scaling, crop=None if args.crop == "none" else args.crop,
            disparity=args.disparity, cam=args.cam, label_format=args.label_format,
            gt_label_format=args.gt_label_format, motion_gt=args.motion_gt, alignment=None if args.align == "none" else args.align)
    except (ValueError, OSError) as err:
        print(f"omeganet-eval {args.task}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_clean(result), sort_keys=False))
    if args.markdown:
        print(markdown_table(args.task, result))
    if not args.json and not args.markdown:
        base = result.get("trivial", {})
        for name in METRICS[args.task]:
            beside = f"   (trivial: {base[name]:.6f})" if isinstance(base.get(name), (int, float)) else ""
            print(f"{name:>14}: {result[name]:.6f}{beside}")
        if base:
            print(f"{'trivial':>14}: {base['answer']}")
        for name, value in result.items():
            if name not in METRICS[args.task] and isinstance(value, (int, float)):
                print(f"{name:>14}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
