"""``omeganet-train``: self-supervised training of one ΩNet stage from videos, image folders, bags, KITTI or the synthetic world.

Examples::

    omeganet-train --config config/train_stage1.yaml --data synth:seed=1,frames=200 --out runs/s1
    omeganet-train --config config/train_stage2.yaml --data synth:seed=1,frames=200 --init runs/s1/last.pt --out runs/s2
    omeganet-train --config config/train_stage3.yaml --data synth:seed=1,frames=200 --init runs/s2/last.pt --out runs/s3
    omeganet-train --config config/train_stage4.yaml --data synth:seed=7,frames=60 --init runs/s3/last.pt --out runs/s4
    omeganet-train --config config/train_stage1.yaml --bag recording/ --topic /camera/image_raw --out runs/robot
    omeganet-train ... --max-minutes 30                  # wall-clock budget: stops cleanly, exit 0
    omeganet-train ... --resume runs/s1/last.pt          # continue exactly where it stopped
    torchrun --nproc_per_node 2 -m omeganet_ros.cli.train --config ... --data ... --out ...   # DDP

Exit status: 0 done, 1 training stopped (non-finite loss), 2 bad arguments or data, 130 interrupted
(a checkpoint was saved).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path


def load_teacher(spec: str):
    """``module:factory`` → the SemanticTeacher the factory returns (called without arguments)."""
    from ..train.data import SemanticTeacher

    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise ValueError(f"--teacher {spec!r}: expected module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--teacher {spec!r}: cannot import ({exc})") from exc
    teacher = factory()
    if not isinstance(teacher, SemanticTeacher):
        raise ValueError(f"--teacher {spec!r}: the factory returned {type(teacher).__name__}, not a callable teacher")
    return teacher


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="omeganet-train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training config YAML (config/train_stage{1,2,3,4}.yaml)")
    p.add_argument("--data", action="append", default=[], metavar="SPEC",
                   help="training data (repeatable): synth:seed=S,frames=N | sequence:PATH | folder:PATH | "
                        "video:PATH | bag:PATH:TOPIC | kitti:ROOT:SPLITFILE | cityscapes:ROOT, options ,labels=DIR|teacher ,intrinsics=FILE (labels=teacher: the bundled ESPNet's cached labels, see docs/training.md)")
    p.add_argument("--bag", help="a ROS 2 bag to train on (with --topic); same as --data bag:BAG:TOPIC")
    p.add_argument("--topic", help="image topic of --bag")
    p.add_argument("--val", action="append", default=[], metavar="SPEC",
                   help="validation data with ground truth (default: the training data's own ground truth)")
    p.add_argument("--out", required=True, help="output folder: last.pt, log.csv, tensorboard/")
    p.add_argument("--resume", help="continue a run from its checkpoint (exact resume)")
    p.add_argument("--init", action="append", metavar="CKPT",
                   help="start from this checkpoint's networks (overrides the config's init); repeatable: "
                        "each later checkpoint replaces the networks it trained, e.g. stage 3 from "
                        "--init stage1/last.pt --init stage2/last.pt; CKPT:NET[,NET] takes only those networks "
                        "(dsnet, camnet, ofnet) from CKPT, e.g. --init stage1e/last.pt --init stage1c/last.pt:camnet")
    p.add_argument("--steps", type=int, help="total number of steps (overrides the config)")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="wall-clock budget: stop cleanly after M minutes (validation, last.pt, exit 0); "
                        "--resume continues the run")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (1 is fastest on a busy machine)")
    p.add_argument("--teacher", help="semantic teacher for proxy labels, as module:factory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from ..train.trainer import Trainer, TrainingError, load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = load_config(args.config)
        if args.init:
            config["init"] = args.init if len(args.init) > 1 else args.init[0]
        data = list(args.data)
        if args.bag or args.topic:
            if not (args.bag and args.topic):
                raise ValueError("--bag and --topic go together")
            data.append(f"bag:{args.bag}:{args.topic}")
        if not data:
            raise ValueError("no training data: give --data SPEC (or --bag FILE --topic TOPIC)")
        if int(config["stage"]) == 4:
            return calibrate(config, data, args)
        teacher = load_teacher(args.teacher) if args.teacher else None
        trainer = Trainer(config, data, args.out, val_specs=args.val, resume=args.resume, semantic_teacher=teacher,
                          device=args.device, progress=not args.no_progress)
        if args.max_minutes is not None and not args.max_minutes > 0:
            raise ValueError(f"--max-minutes must be positive, got {args.max_minutes}")
        metrics = trainer.train(args.steps, max_minutes=args.max_minutes)
    except TrainingError as exc:
        print(f"omeganet-train: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"omeganet-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if trainer.is_main:
        print(json.dumps({"checkpoint": str(trainer.last_checkpoint), "step": trainer.step,
                          "skipped_triplets": trainer.skipped, "stopped_by_budget": trainer.stopped_by_budget,
                          "metrics": metrics}, indent=2))
    return 0


def calibrate(config: dict, data: list[str], args) -> int:
    """Stage 4: calibrate the motion threshold τ on data with motion ground truth; writes OUT/motion_threshold.json."""
    from ..checkpoint import build_networks_from_checkpoint, save_checkpoint
    from ..train.data import build_dataset
    from ..train.stages import calibrate_motion_threshold
    from ..train.trainer import INIT_NETWORKS, init_checkpoints, load_init, resolve_device

    entries = init_checkpoints(config.get("init"))
    if not entries:
        raise ValueError("stage 4 needs the trained networks: give --init CKPT (the last training stage's checkpoint), "
                         "or several, e.g. --init stage1e/last.pt --init stage1c/last.pt:camnet")
    device = resolve_device(args.device)
    nets, lineage, ckpt = {}, {}, None
    for order, entry in enumerate(entries):  # the trainer's rule for several --init (trainer.init_checkpoints)
        source, names = load_init(entry, order)
        ckpt = ckpt or source
        take = [n for n in INIT_NETWORKS if n in source.state_dicts and (names is None or n in names)]
        nets.update({k: v.to(device) for k, v in build_networks_from_checkpoint(source, take).items()})
        lineage.update({n: source.provenance.get("networks_trained_by_stage", {}).get(n) for n in take})
    if set(INIT_NETWORKS) - set(nets):
        raise ValueError(f"stage 4 needs DSNet, CamNet and OFNet; --init gave only {', '.join(sorted(nets))}")
    size = (int(config["size"][0]), int(config["size"][1]))
    dataset = build_dataset(data, size, augment=False)
    result = calibrate_motion_threshold(nets, dataset, device=device,
                                        max_items=int(config["validation"].get("max_items", 200)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "motion_threshold.json").write_text(json.dumps(result, indent=2) + "\n")
    provenance = dict(ckpt.provenance, motion_threshold=result["threshold"], motion_calibration={
        "data": data, "iou_moving": result["iou_moving"], "num_images": result["num_images"]})
    if len(entries) > 1:  # networks from several runs: which came from where, and which stage trained each
        provenance.update(composed_from=entries, networks_trained_by_stage={**ckpt.provenance.get(
            "networks_trained_by_stage", {}), **lineage})
    save_checkpoint(out / "calibrated.pt", nets, input_size=ckpt.input_size, provenance=provenance)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
