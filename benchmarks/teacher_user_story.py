"""Stage 1 on real, unlabelled video with the semantic teacher's labels (``labels=teacher``); prints JSON.

    flock /tmp/omeganet_cpu.lock python benchmarks/teacher_user_story.py --minutes 18

The user story of issue 16, end to end through the public commands:

1. Training data: the MIT dash-cam clip ``../shared/data/driving/solidWhiteRight.mp4``
   (frames 0–179) and ``../shared/data/kitti_raw_tiny``, both ``labels=teacher``
   (the bundled Cityscapes ESPNet; labels cached under OUT/teacher_cache).
   Held out: the clip's last frames (180 to the end), never trained on.
2. ``omeganet-train`` stage 1 (``config/train_stage1.yaml``, no learning-rate
   step: the wall-clock budget ``--max-minutes`` decides the length), from the
   bundled reference checkpoint (trained on the synthetic world only) unless ``--init``.
3. DSNet's semantic agreement with the teacher on the held-out frames, before
   (the init networks) and after: pixel accuracy and mIoU of DSNet's argmax
   against the teacher's labels at the training size (pixels the teacher is
   unsure of, confidence < 0.5, are left out, as in training), beside the
   majority-class baseline (the training labels' most frequent class everywhere).

Reports the labelling time, the training's wall time, steps, semantic loss at the
start and end, and whether the trainer reused the cached labels (no new cache files).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from omeganet_ros.checkpoint import build_networks_from_checkpoint, default_checkpoint_path, load_checkpoint  # noqa: E402
from omeganet_ros.classes import CLASS_NAMES, IGNORE_ID, NUM_CLASSES  # noqa: E402
from omeganet_ros.evaluate.semantic import SemanticEvaluator  # noqa: E402
from omeganet_ros.synth import parse_size  # noqa: E402
from omeganet_ros.train.data import build_dataset  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


@torch.no_grad()
def agreement(dsnet, dataset, constant: int | None = None) -> dict:
    """DSNet's (or a constant class's) agreement with the dataset's teacher labels over all its triplet centres."""
    evaluator = SemanticEvaluator()
    for index in range(len(dataset)):
        item = dataset[index]
        if item is None:
            continue
        teacher = item["labels"].numpy()
        if constant is not None:
            pred = np.full_like(teacher, constant)
        else:
            pred = dsnet(item["cur"][None])["semantic"].argmax(1)[0].numpy()
        evaluator.add(pred, teacher)
    r = evaluator.result()
    return {"pixel_acc": round(r["pixel_acc"], 4), "miou": round(r["miou"], 4), "frames": r["num_images"],
            "pixels": r["num_pixels"]}


def majority_class(dataset) -> int:
    counts = np.zeros(256, np.int64)
    for seq in dataset.sequences:
        for record in seq.frames:
            if record.labels is not None:
                counts += np.bincount(record.labels().ravel(), minlength=256)
    counts[IGNORE_ID] = 0
    return int(counts[:NUM_CLASSES].argmax())


def dsnet_of(path) -> torch.nn.Module:
    return build_networks_from_checkpoint(load_checkpoint(path), ["dsnet"])["dsnet"].eval()


def semantic_losses(log_csv: Path) -> list[float]:
    with log_csv.open() as f:
        return [float(r["loss_semantic"]) for r in csv.DictReader(f) if r.get("loss_semantic")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=SHARED / "driving" / "solidWhiteRight.mp4")
    p.add_argument("--kitti", type=Path, default=SHARED / "kitti_raw_tiny")
    p.add_argument("--held-out-from", type=int, default=180, help="first video frame held out of training")
    p.add_argument("--minutes", type=float, default=18.0, help="training wall-clock budget (omeganet-train --max-minutes)")
    p.add_argument("--size", default="320x96", help="training size WxH")
    p.add_argument("--init", default="bundled", help="'bundled' (the reference checkpoint), 'none', or a checkpoint")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = p.parse_args(argv)
    if not args.video.is_file() or not (args.kitti / "kitti_tiny.txt").is_file():
        print(f"teacher_user_story: needs {args.video} and {args.kitti}/kitti_tiny.txt", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    out = args.out or Path(tempfile.mkdtemp(prefix="teacher_user_story_"))
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "teacher_cache"
    teacher_opts = f"labels=teacher,labels_cache={cache}"
    train_specs = [f"video:{args.video},{teacher_opts},frames=0:{args.held_out_from}",
                   f"kitti:{args.kitti}:{args.kitti / 'kitti_tiny.txt'},{teacher_opts}"]
    held_out_spec = f"video:{args.video},{teacher_opts},frames={args.held_out_from}:"

    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_set = build_dataset(train_specs, size, augment=False)
        held_out = build_dataset([held_out_spec], size, augment=False)
    labelling_s = time.monotonic() - started
    cache_files = sorted(str(p) for p in cache.rglob("*.png"))

    init = {"bundled": default_checkpoint_path(), "none": None}.get(args.init, args.init)
    config = yaml.safe_load((REPO / "config" / "train_stage1.yaml").read_text())
    config.update({"size": list(size), "steps": 1_000_000, "init": str(init) if init else None,
                   "checkpoint_every": 200, "validate_every": 0})
    config["optimizer"]["lr_decay_steps"] = 0
    config_path = out / "stage1_teacher.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = out / "run"
    cmd = [sys.executable, "-m", "omeganet_ros.cli.train", "--config", str(config_path), "--out", str(run_dir),
           "--max-minutes", str(args.minutes), "--threads", str(args.threads), "--no-progress", "--device", "cpu"]
    for spec in train_specs:
        cmd += ["--data", spec]
    if init is None:  # "before" = the trainer's own untrained networks (--steps 0 only validates and saves them)
        untrained = out / "untrained"
        before_cmd = [a if a != str(run_dir) else str(untrained) for a in cmd if a != "--max-minutes"]
        before_cmd.remove(str(args.minutes))
        subprocess.run(before_cmd + ["--steps", "0"], capture_output=True, text=True, cwd=REPO, check=True)
        init = untrained / "last.pt"
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    training_s = time.monotonic() - started
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        print(f"teacher_user_story: omeganet-train exited {proc.returncode}", file=sys.stderr)
        return 1
    trained = json.loads(proc.stdout[proc.stdout.index("{"):])

    majority = majority_class(train_set)
    before = dsnet_of(init)
    after = dsnet_of(run_dir / "last.pt")
    losses = semantic_losses(run_dir / "log.csv")
    result = {
        "benchmark": "teacher_user_story",
        "train_data": train_specs, "held_out": held_out_spec, "size": f"{size[0]}x{size[1]}",
        "triplets": {"train": len(train_set), "held_out": len(held_out)},
        "teacher_labelling_s": round(labelling_s, 1), "teacher_label_files": len(cache_files),
        "trainer_reused_cached_labels": sorted(str(p) for p in cache.rglob("*.png")) == cache_files,
        "init": str(init),
        "training": {"max_minutes": args.minutes, "wall_s": round(training_s, 1), "steps": trained["step"],
                     "skipped_triplets": trained["skipped_triplets"], "threads": args.threads,
                     "loss_semantic_first": round(losses[0], 4) if losses else None,
                     "loss_semantic_last10_mean": round(float(np.mean(losses[-10:])), 4) if losses else None,
                     "final_validation": trained.get("metrics")},
        "held_out_agreement_with_teacher": {
            "before": agreement(before, held_out),
            "after": agreement(after, held_out),
            "majority_class_baseline": {"class": CLASS_NAMES[majority], **agreement(None, held_out, constant=majority)},
        },
        "train_agreement_with_teacher": {"before": agreement(before, train_set), "after": agreement(after, train_set)},
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "run_folder": str(out),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
