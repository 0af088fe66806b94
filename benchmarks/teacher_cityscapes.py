"""The semantic teacher (bundled Cityscapes ESPNet) on real Cityscapes frames, and its CPU speed; prints JSON.

    flock /tmp/omeganet_cpu.lock python benchmarks/teacher_cityscapes.py      # ../shared/data/cityscapes

Accuracy (trainIds, cityscapesScripts conventions, ``evaluate/semantic.py``):

* ``frankfurt_000001_058914`` at full resolution (2048×1024): its ``gtFine_color``
  mapped to trainIds through the Cityscapes palette (``data/cityscapes.py``;
  license-plate pixels share the car colour and count as car).
* ``frankfurt_000000_000294``: image and ``labelTrainIds`` downscaled to 256×128,
  labelled at the teacher's default input width (1024, the frame upsampled) and at
  its native 256×128.

Each beside the published ESPNet figure (60.3 % class mIoU, Cityscapes test set,
authors' README) and the majority-class baseline (every pixel labelled with the
image's most frequent ground-truth class: the best constant answer). A one-image
mIoU averages only the classes present, rare small ones weigh as much as road,
so it is not comparable with a dataset mIoU; pixel accuracy is the steadier figure.

Speed: the network alone (normalised input → logits) and the whole ``labels()``
call (frame → trainIds + confidence), per frame, batch 1, at 1024×512 and 640×192
network input, fp32 channels_last (the teacher's setting) and bf16 autocast, with
``--threads`` PyTorch threads; median of ``--repeats`` after warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from omeganet_ros.classes import CLASS_NAMES, IGNORE_ID  # noqa: E402
from omeganet_ros.data.cityscapes import color_to_train_ids  # noqa: E402
from omeganet_ros.evaluate.semantic import SemanticEvaluator  # noqa: E402
from omeganet_ros.teacher import ESPNetTeacher  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cityscapes"
PUBLISHED = {"miou": 0.603, "miou_category": 0.822, "split": "Cityscapes test (1525 images)",
             "source": "sacmehta/ESPNet README"}


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    evaluator = SemanticEvaluator()
    evaluator.add(pred, gt)
    r = evaluator.result()
    return {"miou": round(r["miou"], 4), "miou_category": round(r["miou_category"], 4),
            "pixel_acc": round(r["pixel_acc"], 4), "classes_present": sum(v is not None for v in r["iou_per_class"].values()),
            "iou_per_class": {k: (None if v is None else round(v, 3)) for k, v in r["iou_per_class"].items()}}


def evaluate_frame(teacher: ESPNetTeacher, image: np.ndarray, gt: np.ndarray) -> dict:
    labels, confidence = teacher.labels(image)
    valid = gt != IGNORE_ID
    majority = int(np.bincount(gt[valid], minlength=len(CLASS_NAMES)).argmax())
    sure = valid & (confidence >= 0.5)
    return {
        "size": f"{image.shape[1]}x{image.shape[0]}", "teacher_input_width": teacher.input_width,
        "teacher": scores(labels, gt),
        "majority_class_baseline": {"class": CLASS_NAMES[majority],
                                    **{k: v for k, v in scores(np.full_like(gt, majority), gt).items() if k != "iou_per_class"}},
        "confidence_0.5": {"pixels_kept": round(float(sure.sum() / valid.sum()), 4),
                           "pixel_acc_kept": round(float((labels[sure] == gt[sure]).mean()), 4),
                           "pixel_acc_dropped": round(float((labels[valid & ~sure] == gt[valid & ~sure]).mean()), 4)
                           if (valid & ~sure).any() else None},
    }


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return round(float(np.median(times)), 1)


def speed(teacher: ESPNetTeacher, width: int, height: int, repeats: int) -> dict:
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x = teacher.normalise(torch.rand(1, 3, height, width)).contiguous(memory_format=torch.channels_last)
    out = {}
    with torch.no_grad():
        out["network_fp32_ms"] = median_ms(lambda: teacher.net(x), repeats)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out["network_bf16_ms"] = median_ms(lambda: teacher.net(x), repeats)
    t = ESPNetTeacher(input_width=width)
    out["labels_call_ms"] = median_ms(lambda: t.labels(frame), repeats)
    out["fps_labels_call"] = round(1000.0 / out["labels_call_ms"], 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if not (args.root / "frankfurt_000001_058914_gtFine_color.png").is_file():
        print(f"teacher_cityscapes: Cityscapes samples not found at {args.root}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    teacher = ESPNetTeacher()
    full_image = read_rgb(args.root / "frankfurt_000001_058914_leftImg8bit.png")
    full_gt = color_to_train_ids(read_rgb(args.root / "frankfurt_000001_058914_gtFine_color.png"))
    small_image = read_rgb(args.root / "frankfurt_000000_000294_leftImg8bit.png")
    small_gt = cv2.imread(str(args.root / "frankfurt_000000_000294_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    result = {
        "benchmark": "teacher_cityscapes",
        "teacher": teacher.describe(),
        "published": PUBLISHED,
        "frankfurt_000001_058914": evaluate_frame(teacher, full_image, full_gt),
        "frankfurt_000000_000294": evaluate_frame(teacher, small_image, small_gt),
        "frankfurt_000000_000294_native": evaluate_frame(ESPNetTeacher(input_width=256), small_image, small_gt),
        "speed": {"1024x512": speed(teacher, 1024, 512, args.repeats), "640x192": speed(teacher, 640, 192, args.repeats)},
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": args.threads,
                    "load_average": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__,
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
