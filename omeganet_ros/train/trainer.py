"""The trainer: one loop for the three ΩNet stages, on CPU or CUDA (AMP), one process or many (DDP).

* Checkpoints (``OUT/last.pt``, atomic) in the package format
  (``checkpoint.py``) with full provenance — config, data specs, git commit,
  step, metrics — and, under ``extra["trainer"]``, everything an exact resume
  needs: optimiser, LR schedule, AMP scaler, loss weighting, RNG state and the
  position in the epoch. All plain tensors and containers, so the file loads
  with ``torch.load(weights_only=True)`` like any model file.
* Resume (``resume=``): same data order, same augmentation, same RNG, so a
  resumed CPU run is bit-identical to an uninterrupted one.
* A non-finite loss stops the run with :class:`TrainingError`; ``last.pt``
  keeps the last good state (it is only written after good steps).
* Unreadable frames are skipped and counted (``skipped_triplets`` in logs
  and provenance). Ctrl-C saves ``last.pt`` before stopping.
* Logs: ``OUT/log.csv`` always; TensorBoard (``OUT/tensorboard``) when the
  ``tensorboard`` package is installed. A tqdm bar shows losses and ETA.
* Validation with the evaluation suite wherever ground truth exists (depth,
  flow, semantics), on ``val_specs`` or else on the training sequences.
* Multi-process: launched by ``torchrun`` (env ``WORLD_SIZE`` > 1), networks
  are wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU); each
  rank reads its own shard of every epoch; rank 0 logs, validates and saves.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import datetime
import os
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ..checkpoint import build_networks_from_checkpoint, load_checkpoint, load_state_checked, save_checkpoint
from ..nets import build_networks
from . import stages as stages_mod
from .data import SemanticTeacher, TripletDataset, build_dataset, collate_triplets
from .scene import predict_triplet
from .weighting import build_weighting

DEFAULT_CONFIG: dict = {
    "stage": 1,
    "size": [192, 64],  # W, H of the network input
    "batch_size": 4,
    "steps": 1000,
    "seed": 0,
    "intrinsics": "auto",  # learned | given | auto (given where the data knows K)
    "architecture": "official",  # official: the authors' networks | legacy: this package's first ones (nets.build_networks)
    "networks": {"dsnet": {}, "camnet": {}, "ofnet": {}},  # constructor arguments, e.g. legacy camnet: {"pose_negative_slope": 0.1}
    # BatchNorm running-statistics momentum of the trained networks; None: each network's own (the authors':
    # 0.001, slim's decay 0.999; legacy: 0.1). Short runs need ~0.1: after 100 steps at 0.001 the statistics
    # are still 90 % at their initial values and eval-mode depth had not improved at all (test_train_learning).
    "batch_norm_momentum": None,
    # networks of the stage kept as they are (e.g. [dsnet]: fit CamNet to a finished DSNet), and networks whose
    # BatchNorm normalises with its running statistics while training (not the batch's: with a batch of 4,
    # batch statistics in CamNet's pose head average each sample's motion with the others')
    "frozen_networks": [],
    "batch_norm_frozen": [],
    # {network: [submodule, ...]}: of a trained network only these submodules learn (e.g. {dsnet: [semantic]}:
    # the semantic head on DSNet's features, depth untouched); the rest keeps its weights and BatchNorm statistics.
    # An empty list: the whole network.
    "trained_parts": {"dsnet": [], "camnet": [], "ofnet": []},
    "init": None,  # checkpoint(s) to start from (stage 2: stage 1's; stage 3: stage 1's then stage 2's, or stage 2's)
    "optimizer": {"lr": 1e-4, "weight_decay": 0.0, "lr_decay_steps": 0, "lr_decay": 0.1, "grad_clip": 0.0},
    "weighting": {"name": "equal", "temperature": 2.0, "period": 100},
    "loss": {"scales": 4, "automask": True, "disp_smoothness": 1e-3, "flow_smoothness": 0.02,
             "occlusion": "fwd_bwd", "occlusion_alpha1": 0.01, "occlusion_alpha2": 0.5, "occlusion_warmup_steps": 300,
             "occlusion_min_visible": 0.5,
             # input | level (losses.depth_pose_loss, losses.optical_flow_loss); None: the stage's own, stage 1:
             # input (monodepth2's), flow stages: level (UnFlow's)
             "photometric_resolution": None,
             "consistency_threshold": 0.5,
             # flow stages: census | ssim_l1; one weight per OFNet output (full resolution, then levels), None:
             # the levels averaged; stage 3: fixed factors on its two terms before the weighting
             "photometric": "ssim_l1", "compile_census": True, "flow_level_weights": None,
             "distillation_weight": 1.0, "photometric_weight": 1.0,
             # stage 1: weight of an L1 pulling CamNet's motion on the still triplet (t, t, t) to zero, and of an
             # L1 between its motions t−1→t and t→t+1 (constant velocity: fw ∘ bw ≈ identity); 0: off
             "still_triplet_weight": 0.0, "pose_consistency_weight": 0.0,
             # stage 1: min | mean over the two sources per pixel (monodepth2's default | its --avg_reprojection)
             "source_reduction": "min",
             # stage 1: none | enet (losses.semantic_loss: rare classes weighted up by their batch frequency)
             "semantic_class_weights": "none",
             # stage 1: leave the pixels whose proxy label can move (person, rider, vehicles) out of the photometric
             # term (SGDepth, Klingner et al. 2020, masks such objects): a vehicle moving with the camera otherwise
             # teaches "far"; needs labels, frames without them keep every pixel
             "ignore_dynamic": False,
             # stage 1: weight of the L1 (px of image shift) between CamNet's rotations and PnP fits of the frozen
             # OFNet's flow on DSNet's depth (omeganet_ros.pose_proxy; needs a trained OFNet); 0: off
             "pose_proxy_weight": 0.0},
    # architecture moreau: tasks [depth] = ST, [depth, instance] = MT; depth_normalization mean | none
    # (nets.MoreauNet.depth_from_disp); photometric_resolution of its depth loss: input | level (losses.depth_pose_loss)
    "moreau": {"tasks": ["depth", "instance"], "depth_normalization": "mean", "photometric_resolution": "level"},
    "distillation_semantics": "dsnet",  # stage 3: dsnet | labels (proxy labels where present)
    # stage 3: rotation of the rigid flow's camera motions: camnet (ΩNet's) | flow (PnP fit of the teacher's flow on
    # the depth, as the engine's rotation_from_flow; omeganet_ros.pose_proxy)
    "rigid_rotation": "camnet",
    "student_init": "teacher",  # stage 3: teacher | scratch
    # context: 1 adds t ± 2 to each item (proper reverse triplets for stage 2's occlusion check)
    "data": {"stride": 1, "augment": True, "num_workers": 0, "context": 0},
    "amp": True,  # CUDA only
    "checkpoint_every": 500,
    "log_every": 10,
    "validate_every": 0,  # 0: only at the end
    "validation": {"max_items": 50},
}


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, …); the message says why and where the last good checkpoint is."""


def merge_config(base: dict, override: dict) -> dict:
    """Deep merge of ``override`` into a copy of ``base``; unknown top-level keys are an error."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if key not in base:
            raise ValueError(f"unknown training config key {key!r}; known: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            unknown = set(value) - set(base[key])
            if unknown:
                raise ValueError(f"unknown training config keys {sorted(unknown)} under {key!r}; known: {sorted(base[key])}")
            out[key].update(value)
        else:
            out[key] = value
    return out


def load_config(path) -> dict:
    """A YAML training config merged over :data:`DEFAULT_CONFIG`."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"training config {path}: cannot be read ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"training config {path}: expected a mapping at the top level")
    return merge_config(DEFAULT_CONFIG, raw)


INIT_NETWORKS = ("dsnet", "camnet", "ofnet")


def init_checkpoints(value) -> list[str]:
    """The config's ``init`` as a list of entries: None, one entry, or a list of entries.

    An entry is a checkpoint path, optionally followed by ``:NET[,NET…]`` (networks of ``INIT_NETWORKS``) to take
    only those networks from it (:func:`split_init`). With several entries, the first gives every network it
    holds (or those it names) and each later one replaces the networks it trained (its
    ``networks_trained_by_stage``) or those it names.
    """
    if not value:
        return []
    paths = [value] if isinstance(value, (str, Path)) else list(value)
    for path in paths:
        if not isinstance(path, (str, Path)):
            raise ValueError(f"init must be a checkpoint path or a list of paths, got {value!r}")
    return [str(path) for path in paths]


def split_init(entry: str) -> tuple[str, list[str] | None]:
    """``"runs/s1c/last.pt:camnet"`` → (``"runs/s1c/last.pt"``, ["camnet"]); a plain path (or an existing file whose
    name contains a colon) → (path, None). Names outside ``INIT_NETWORKS`` after the last colon are an error."""
    entry = str(entry)
    path, sep, names = entry.rpartition(":")
    if not sep or not path or Path(entry).exists() or "/" in names:
        return entry, None
    selected = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(selected) - set(INIT_NETWORKS))
    if unknown or not selected:
        raise ValueError(f"init {entry!r}: after the last ':' come network names ({', '.join(INIT_NETWORKS)}), "
                         f"got {names!r}")
    return path, selected


def load_init(entry: str, order: int):
    """The checkpoint of the ``order``-th init entry and the networks it contributes (None: all it holds): those
    the entry names (each must be in the checkpoint), else all for the first entry and, for a later one, those it
    trained (its ``networks_trained_by_stage``: stage 3 = stage 1's DSNet + CamNet and stage 2's OFNet)."""
    path, selected = split_init(entry)
    ckpt = load_checkpoint(path)
    if selected is not None:
        missing = sorted(set(selected) - set(ckpt.state_dicts))
        if missing:
            raise ValueError(f"init {entry!r}: {path} holds no {', '.join(missing)}")
        return ckpt, selected
    if order == 0:
        return ckpt, None
    return ckpt, [n for n, stage in ckpt.provenance.get("networks_trained_by_stage", {}).items() if stage is not None]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).resolve().parent,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


class CsvLog:
    """Append-only CSV of training/validation scalars (the columns grow as new names appear).

    A row with the known columns is appended as one line; the file is rewritten only when a new column
    appears. Resuming at step N drops the rows of steps after N (they are redone), so no step repeats.
    """

    def __init__(self, path: Path, append: bool = True, resumed_step: int | None = None):
        self.path = path
        self.fields: list[str] = []
        if append and path.is_file():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                self.fields = list(reader.fieldnames or [])
            if resumed_step is not None:
                kept = [r for r in rows if _row_step(r) <= resumed_step]
                if len(kept) != len(rows):
                    self._rewrite(kept)
        elif path.exists():
            path.unlink()

    def write(self, row: dict) -> None:
        row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        new = [k for k in row if k not in self.fields]
        if new or not self.path.is_file():
            rows = []
            if self.path.is_file():
                with self.path.open(newline="") as f:
                    rows = list(csv.DictReader(f))
            self.fields += new
            self._rewrite(rows + [row])
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(row)

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)


def _row_step(row: dict) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


@contextlib.contextmanager
def sigint_deferred():
    """Hold back Ctrl-C (SIGINT) while the block runs, then raise KeyboardInterrupt if one came.

    A checkpoint write interrupted half-way leaves no checkpoint; deferring the signal keeps it whole.
    Outside the main thread (signals cannot be handled there) the block simply runs.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


class EpochBatches:
    """Batches of dataset indices for one epoch: a permutation from (seed, epoch), this rank's shard, drop_last."""

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 shuffle: bool = True):
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(size, generator=gen).tolist() if shuffle else list(range(size))
        per_rank = size // world
        shard = order[rank * per_rank:(rank + 1) * per_rank]
        self.batches = [shard[i:i + batch_size] for i in range(0, len(shard) - batch_size + 1, batch_size)]

    def __len__(self) -> int:
        return len(self.batches)


class Trainer:
    """Train one ΩNet stage.

    ``config``: a dict as :data:`DEFAULT_CONFIG` (see ``load_config``);
    ``data_specs`` / ``val_specs``: ``--data`` specs (``train/data.py``);
    ``out_dir``: checkpoints and logs; ``resume``: a ``last.pt`` to continue;
    ``semantic_teacher``: a :class:`~omeganet_ros.train.data.SemanticTeacher`
    labelling frames that have no proxy labels; ``device``: "cpu", "cuda",
    "cuda:1" or "auto". Under ``torchrun`` each process is one rank.
    """

    def __init__(self, config: dict, data_specs: list[str], out_dir, *, val_specs: list[str] | None = None,
                 resume=None, semantic_teacher: SemanticTeacher | None = None, device: str | None = None,
                 progress: bool = True, dataset: TripletDataset | None = None):
        self.config = merge_config(DEFAULT_CONFIG, config)
        self.data_specs = list(data_specs)
        self.val_specs = list(val_specs or [])
        self.out_dir = Path(out_dir)
        self.resume_path = Path(resume) if resume else None
        self.semantic_teacher = semantic_teacher
        self.progress = progress
        self._dataset = dataset
        self._device_name = device
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.skipped = 0
        self.metrics: dict = {}
        self.last_checkpoint: Path | None = None

    # ------------------------------------------------------------------ setup
    def _setup_distributed(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_process_group = False
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            self.owns_process_group = True
        self.is_main = self.rank == 0

    def _setup(self) -> None:
        cfg = self.config
        self.device = resolve_device(self._device_name)
        self._setup_distributed()
        if self.device.type == "cuda" and self.world > 1 and self._device_name in (None, "", "auto", "cuda"):
            self.device = torch.device("cuda", self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(int(cfg["seed"]))
        self.size = (int(cfg["size"][0]), int(cfg["size"][1]))
        self.stage = stages_mod.build_stage(cfg)
        self.dataset = self._dataset or build_dataset(self.data_specs, self.size, stride=int(cfg["data"]["stride"]),
                                                      augment=bool(cfg["data"]["augment"]), seed=int(cfg["seed"]),
                                                      context=int(cfg["data"]["context"]))
        has_labels = self.dataset.has_any_labels or self.semantic_teacher is not None
        self.stage.attach_data(self.dataset)
        if "semantic" in self.stage.tasks(True) and not has_labels:
            warnings.warn("no proxy semantic labels (no labels= folder, no teacher): the semantic loss is off")
        self.tasks = self.stage.tasks(has_labels)
        if self.resume_path is None and (self.out_dir / "last.pt").exists():
            raise ValueError(f"{self.out_dir} already holds a run (last.pt): continue it with --resume "
                             f"{self.out_dir / 'last.pt'} or choose another --out")
        self.out_dir.mkdir(parents=True, exist_ok=True)

        self.nets: dict[str, nn.Module] = {k: v.to(self.device) for k, v in self.stage.build_networks(cfg).items()}
        resume_ckpt = load_checkpoint(self.resume_path) if self.resume_path else None
        init_paths = init_checkpoints(cfg.get("init"))
        # Which stage last trained each network (None: still at its random initialisation).
        lineage = {name: None for name in self.nets}
        semantic_lineage = None  # which stage last trained DSNet's semantic head (None: untrained)
        if resume_ckpt is None and init_paths:
            for order, entry in enumerate(init_paths):
                init_ckpt, names = load_init(entry, order)
                trained_by = init_ckpt.provenance.get("networks_trained_by_stage", {})
                self._load_networks(init_ckpt, strict_names=False, only=names)
                lineage.update({n: s for n, s in trained_by.items() if names is None or n in names})
                if names is None or "dsnet" in names:
                    semantic_lineage = init_ckpt.provenance.get("semantic_head_trained_by_stage")
        elif resume_ckpt is not None:
            lineage.update(resume_ckpt.provenance.get("networks_trained_by_stage", {}))
            semantic_lineage = resume_ckpt.provenance.get("semantic_head_trained_by_stage")
        lineage.update({name: self.stage.number for name in self.stage.trained})
        if float(cfg.get("loss", {}).get("pose_proxy_weight", 0.0)) > 0 and lineage.get("ofnet") is None:
            raise ValueError("loss.pose_proxy_weight fits the proxy rotations to OFNet's flow, but this run's OFNet "
                             "is untrained: --init a checkpoint that holds a trained OFNet (stage 2 or later)")
        if "dsnet" in self.stage.trained and "semantic" in self.tasks:
            semantic_lineage = self.stage.number
        if self.stage.number == 3:
            self.nets["teacher"] = copy.deepcopy(self.nets["ofnet"])
            if cfg.get("student_init", "teacher") == "scratch" and resume_ckpt is None:
                torch.manual_seed(int(cfg["seed"]) + 1)
                self.nets["ofnet"] = build_networks(cfg["networks"], cfg["architecture"])["ofnet"].to(self.device)
        if resume_ckpt is not None:
            self._load_networks(resume_ckpt, strict_names=True)
        unknown = set(cfg["frozen_networks"]) - set(self.stage.trained)
        if unknown:
            raise ValueError(f"frozen_networks {sorted(unknown)} are not trained by stage {self.stage.number} "
                             f"({list(self.stage.trained)})")
        self.trained_names = [n for n in self.stage.trained if n not in cfg["frozen_networks"]]
        self.trained_parts = self._trained_parts(cfg["trained_parts"])
        self._set_train_modes()
        for net in self.nets.values():
            net.requires_grad_(False)
        for module in self._learning_modules():
            module.requires_grad_(True)
        for name, net in self.nets.items():
            if cfg["batch_norm_momentum"] is not None and name in self.stage.trained:
                for module in net.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.momentum = float(cfg["batch_norm_momentum"])

        wcfg = cfg["weighting"]
        self.weighting = build_weighting(wcfg["name"], self.tasks, temperature=wcfg.get("temperature", 2.0),
                                         period=wcfg.get("period", 100)).to(self.device)
        params = [p for module in self._learning_modules() for p in module.parameters()]
        params += list(self.weighting.parameters())
        ocfg = cfg["optimizer"]
        self.optimizer = torch.optim.Adam(params, lr=float(ocfg["lr"]), weight_decay=float(ocfg.get("weight_decay", 0)))
        decay_steps = int(ocfg.get("lr_decay_steps", 0) or 0)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=decay_steps or 10 ** 12,
                                                         gamma=float(ocfg.get("lr_decay", 0.1)))
        self.use_amp = bool(cfg["amp"]) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

        self.train_nets = dict(self.nets)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            for name in self.stage.trained:
                self.train_nets[name] = DDP(self.nets[name], device_ids=ids, find_unused_parameters=True)

        if resume_ckpt is not None:
            self._load_trainer_state(resume_ckpt)
        self.provenance_base = {
            "stage": self.stage.number,
            "stage_name": getattr(self.stage, "name", None) or stages_mod.STAGE_NAMES[self.stage.number],
            "architecture": cfg["architecture"],
            "config": cfg, "data": self.data_specs, "val_data": self.val_specs, "git_commit": git_commit(),
            "torch": str(torch.__version__), "world_size": self.world, "device": self.device.type,
            "trained": list(self.stage.trained), "networks_trained_by_stage": lineage, "tasks": self.tasks,
            "semantic_head_trained_by_stage": semantic_lineage,
            "init": [str(path) for path in init_paths] or None,
        }

    def _load_networks(self, ckpt, strict_names: bool, only: list[str] | None = None) -> None:
        """Take the networks ``ckpt`` holds (all, or ``only`` these), rebuilt from its architecture record,
        so that constructor arguments it was trained with (e.g. CamNet's ``pose_negative_slope``) carry over."""
        where = f"checkpoint {ckpt.path}"
        for name in list(self.nets):
            if name == "teacher" or (only is not None and name not in only):
                continue  # the teacher is kept in extra["teacher_ofnet"], below
            if name in ckpt.state_dicts:
                net = build_networks_from_checkpoint(ckpt, [name])[name]
                self.nets[name] = self._with_configured_arguments(name, net, where).to(self.device)
            elif strict_names:
                raise ValueError(f"{where}: no weights for network {name!r} needed to resume")
        if "teacher" in self.nets and "teacher_ofnet" in ckpt.extra:
            load_state_checked(self.nets["teacher"], ckpt.extra["teacher_ofnet"], where=f"{where}, teacher OFNet")

    def _with_configured_arguments(self, name: str, net: nn.Module, where: str) -> nn.Module:
        """``net`` (from a checkpoint) rebuilt with the constructor arguments the config's ``networks.<name>`` names
        over the checkpoint's record, its weights kept: e.g. ``networks: {camnet: {reversal_symmetric: true}}``
        fine-tunes a CamNet trained without it. Arguments that change the weights' shapes are an error."""
        wanted = dict(self.config["networks"].get(name) or {})
        record = net.config() if hasattr(net, "config") else {}
        if not wanted or all(record.get(k) == v for k, v in wanted.items()):
            return net
        try:
            rebuilt = type(net)(**{**record, **wanted})
            rebuilt.load_state_dict(net.state_dict(), strict=True)
        except (TypeError, RuntimeError) as exc:
            raise ValueError(f"{where}: config networks.{name} {wanted} cannot be applied to its {type(net).__name__} "
                             f"(built with {record}): {exc}") from exc
        return rebuilt.train(net.training)

    def _load_trainer_state(self, ckpt) -> None:
        state = ckpt.extra.get("trainer")
        if not state:
            raise ValueError(f"checkpoint {ckpt.path}: has no trainer state; use it as config 'init', not --resume")
        saved_stage = ckpt.provenance.get("stage")
        if saved_stage != self.stage.number:
            raise ValueError(f"checkpoint {ckpt.path} is from stage {saved_stage}, the config trains stage {self.stage.number}")
        if list(state["tasks"]) != self.tasks:
            raise ValueError(f"checkpoint {ckpt.path} trained tasks {state['tasks']}, this run has {self.tasks} "
                             "(proxy labels present in one and not the other?)")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.weighting.load_state_dict(state["weighting"])
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        self.skipped = int(state.get("skipped", 0))
        self.metrics = dict(ckpt.provenance.get("metrics", {}))
        rng = state["rng"]
        torch.set_rng_state(rng["cpu"][self.rank] if self.rank < len(rng["cpu"]) else rng["cpu"][0])
        if self.device.type == "cuda" and rng.get("cuda"):
            torch.cuda.set_rng_state(rng["cuda"][min(self.rank, len(rng["cuda"]) - 1)], self.device)

    # ------------------------------------------------------------------ checkpoints
    def _gather_rng(self, collective: bool = True) -> dict:
        cpu = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        if self.world > 1 and collective:
            cpu_all = [torch.empty_like(cpu) for _ in range(self.world)]
            dist.all_gather_object(cpu_all, cpu)
            cuda_all = [None] * self.world
            dist.all_gather_object(cuda_all, cuda.cpu() if cuda is not None else None)
        else:
            cpu_all, cuda_all = [cpu], [cuda.cpu() if cuda is not None else None]
        return {"cpu": cpu_all, "cuda": [c for c in cuda_all if c is not None]}

    def save(self, name: str = "last.pt", collective: bool = True) -> Path | None:
        """Write a checkpoint (rank 0). All ranks must call it, for the RNG gather, unless
        ``collective`` is False (Ctrl-C: ranks may stop at different points; rank 0's RNG then stands for all)."""
        rng = self._gather_rng(collective)
        if not self.is_main:
            return None
        networks = {k: v for k, v in self.nets.items() if k != "teacher"}
        extra = {"trainer": {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "skipped": self.skipped,
            "tasks": self.tasks, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "weighting": self.weighting.state_dict(), "rng": rng,
        }}
        if "teacher" in self.nets:
            extra["teacher_ofnet"] = {k: v.detach().cpu() for k, v in self.nets["teacher"].state_dict().items()}
        provenance = dict(self.provenance_base, step=self.step, epoch=self.epoch, skipped_triplets=self.skipped,
                          metrics=self.metrics, loss_weights=self.weighting.weights(),
                          saved=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        target = self.out_dir / name
        for orphan in self.out_dir.glob(f"{name}.*.tmp"):  # left by a save killed half-way (kill -9, power loss)
            orphan.unlink(missing_ok=True)
        try:
            with sigint_deferred():
                path = save_checkpoint(target, networks, input_size=self.size, provenance=provenance, extra=extra)
        except (OSError, RuntimeError) as exc:  # disk full surfaces from torch.save as a RuntimeError
            kept = f"the previous {target} is intact" if target.is_file() else f"no {target} was written"
            raise TrainingError(f"cannot write the checkpoint at step {self.step} ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}); {kept}") from exc
        self.last_checkpoint = path
        return path

    # ------------------------------------------------------------------ loop
    def _autocast(self):
        if self.use_amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _prepare(self, batch: dict) -> dict:
        batch = {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
        if self.semantic_teacher is not None and "semantic" in self.tasks:
            missing = ~batch["has_labels"]
            if bool(missing.any()):
                with torch.no_grad():
                    labels = self.semantic_teacher(batch["cur"][missing]).long()
                if labels.shape[-2:] != batch["labels"].shape[-2:]:
                    raise ValueError(f"semantic teacher returned labels of size {tuple(labels.shape[-2:])}, "
                                     f"expected {tuple(batch['labels'].shape[-2:])}")
                batch["labels"][missing] = labels
        return batch

    def _all_finite(self, value: torch.Tensor) -> bool:
        ok = torch.tensor([1.0 if bool(torch.isfinite(value)) else 0.0], device=self.device)
        if self.world > 1:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item() > 0)

    def _train_step(self, batch: dict) -> dict:
        self.stage.current_step = self.step
        task_losses, logs = self.stage.compute(batch, self.train_nets, self.tasks, self._autocast)
        total = self.weighting(task_losses)
        if not self._all_finite(total.detach()):
            parts = {k: float(v.detach()) for k, v in task_losses.items()}
            where = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written yet"
            raise TrainingError(f"non-finite training loss at step {self.step + 1} (task losses {parts}); "
                                f"stopping, {where}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        clip = float(self.config["optimizer"].get("grad_clip", 0) or 0)
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        row = {"loss": float(total.detach())}
        row.update({f"loss_{k}": float(v.detach()) for k, v in task_losses.items()})
        row.update(logs)
        row.update({f"weight_{k}": v for k, v in self.weighting.weights().items()})
        return row

    def train(self, steps: int | None = None, max_minutes: float | None = None) -> dict:
        """Train up to ``steps`` (default: the config's) total steps; returns the final metrics.

        ``max_minutes``: a wall-clock budget for this call. When it is spent the run stops after the
        current step exactly as at its last step (validation, ``last.pt``), and :attr:`stopped_by_budget`
        is set; ``--resume`` continues it.
        """
        self._setup()
        self.stopped_by_budget = False
        total_steps = int(steps if steps is not None else self.config["steps"])
        batch_size = int(self.config["batch_size"])
        n = len(self.dataset)
        if n < batch_size * self.world:
            raise ValueError(f"the training data has {n} triplets, fewer than batch_size × processes = "
                             f"{batch_size} × {self.world}; lower batch_size or add data")
        log = CsvLog(self.out_dir / "log.csv", append=self.resume_path is not None,
                     resumed_step=self.step) if self.is_main else None
        tb = self._tensorboard() if self.is_main else None
        bar = None
        if self.is_main and self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, initial=self.step, desc=f"stage {self.stage.number}", dynamic_ncols=True)
        num_workers = int(self.config["data"]["num_workers"])
        ckpt_every = int(self.config["checkpoint_every"])
        log_every = max(1, int(self.config["log_every"]))
        val_every = int(self.config["validate_every"])
        started = time.monotonic()
        try:
            while self.step < total_steps:
                self.dataset.set_epoch(self.epoch)
                batches = EpochBatches(n, batch_size, int(self.config["seed"]), self.epoch, self.rank, self.world)
                todo = batches.batches[self.batch_in_epoch:]
                # Its own generator: a DataLoader otherwise draws its worker seed from the global RNG,
                # which would make a resumed run (one more loader) diverge from an uninterrupted one.
                loader_rng = torch.Generator().manual_seed(int(self.config["seed"]) * 7_919 + self.epoch)
                loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=todo, collate_fn=collate_triplets,
                                                     num_workers=num_workers, generator=loader_rng)
                for batch in loader:
                    if self.step >= total_steps:
                        break
                    skipped = int(batch.pop("skipped"))
                    trainable = "cur" in batch  # False: every triplet of this batch was unreadable
                    row = self._train_step_or_roll_back(batch) if trainable else None
                    # Counted only once the step is done: a Ctrl-C inside it resumes with this same batch.
                    self.batch_in_epoch += 1
                    self.skipped += skipped
                    if not trainable:
                        continue
                    self.step += 1
                    if self.is_main and (self.step % log_every == 0 or self.step == total_steps):
                        row = {"step": self.step, "epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"],
                               "skipped_triplets": self.skipped, "seconds": round(time.monotonic() - started, 2), **row}
                        log.write(row)
                        if tb is not None:
                            for k, v in row.items():
                                if isinstance(v, float) and k not in ("step",):
                                    tb.add_scalar(f"train/{k}", v, self.step)
                    if bar is not None:
                        bar.update(1)
                        postfix = {k: f"{v:.4f}" for k, v in row.items() if k.startswith("loss")}
                        if self.skipped:
                            postfix["skipped"] = self.skipped
                        bar.set_postfix(postfix, refresh=False)
                    if val_every and self.step % val_every == 0 and self.step < total_steps:
                        self._validate_and_log(log, tb)
                    if ckpt_every and self.step % ckpt_every == 0 and self.step < total_steps:
                        self.save()
                    if max_minutes is not None and self._budget_spent(started, max_minutes):
                        self.stopped_by_budget = True
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    continue
                break
            self._validate_and_log(log, tb)
            self.save()
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
                bar = None
            path = self.save(collective=False)
            if self.is_main:
                print(f"\ninterrupted at step {self.step}: checkpoint saved to {path}; resume with --resume {path}")
            raise
        finally:
            if bar is not None:
                bar.close()
            if tb is not None:
                tb.close()
            self._teardown()
        if self.skipped and self.is_main:
            warnings.warn(f"{self.skipped} triplets skipped because a frame could not be read")
        return self.metrics

    def _train_step_or_roll_back(self, batch: dict) -> dict:
        """One training step; a Ctrl-C inside it restores the BatchNorm statistics and RNG state the step had
        already moved, so the checkpoint saved on interrupt is exactly the state after the last completed step."""
        buffers = {name: [b.detach().clone() for b in net.buffers()] for name, net in self.nets.items()}
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        try:
            return self._train_step(self._prepare(batch))
        except KeyboardInterrupt:
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
            with torch.no_grad():
                for name, net in self.nets.items():
                    for live, saved in zip(net.buffers(), buffers[name]):
                        live.copy_(saved)
            raise

    def _set_train_modes(self) -> None:
        """Training mode for the networks this run updates (only the ``trained_parts`` of a partly trained one),
        eval mode for the others and for the BatchNorm layers of ``batch_norm_frozen`` networks."""
        for net in self.nets.values():
            net.eval()
        for module in self._learning_modules():
            module.train()
        for name, net in self.nets.items():
            if name in self.config["batch_norm_frozen"]:
                for module in net.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()

    def _learning_modules(self) -> list[nn.Module]:
        """The modules this run updates: each trained network whole, or only its ``trained_parts``."""
        return [m for name in self.trained_names for m in self.trained_parts.get(name, [self.nets[name]])]

    def _trained_parts(self, spec: dict) -> dict[str, list[nn.Module]]:
        """``trained_parts`` as modules, checked: each network trained by this run, each name a submodule of it."""
        parts = {}
        for name, submodules in spec.items():
            if not submodules:
                continue
            if name not in self.trained_names:
                raise ValueError(f"trained_parts: {name!r} is not a network this run trains ({self.trained_names})")
            net = self.nets[name]
            children = dict(net.named_children())
            unknown = [m for m in submodules if m not in children]
            if unknown:
                raise ValueError(f"trained_parts.{name}: {unknown} not among {type(net).__name__}'s "
                                 f"submodules {sorted(children)}")
            parts[name] = [children[m] for m in submodules]
        return parts

    def _budget_spent(self, started: float, max_minutes: float) -> bool:
        """True once ``max_minutes`` of wall time have passed since ``started``; every process agrees (rank 0 decides)."""
        spent = torch.tensor([float(time.monotonic() - started >= 60.0 * max_minutes)])
        if self.world > 1 and dist.is_initialized():
            dist.broadcast(spent, src=0)
        return bool(spent.item())

    def _teardown(self) -> None:
        if getattr(self, "owns_process_group", False) and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except (ImportError, ModuleNotFoundError):
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    # ------------------------------------------------------------------ validation
    def _validate_and_log(self, log, tb) -> None:
        metrics = self.validate() if self.is_main else {}
        if self.world > 1:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        self.metrics = metrics
        if self.is_main and metrics:
            flat = {f"val_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
            log.write({"step": self.step, **flat})
            if tb is not None:
                for k, v in flat.items():
                    tb.add_scalar(k.replace("val_", "val/"), v, self.step)

    def _validation_dataset(self) -> TripletDataset:
        if not hasattr(self, "_val_dataset"):
            if self.val_specs:
                self._val_dataset = build_dataset(self.val_specs, self.size, stride=int(self.config["data"]["stride"]),
                                                  augment=False)
            else:
                self._val_dataset = TripletDataset(self.dataset.sequences, self.size, stride=self.dataset.stride,
                                                   augment=False)
        return self._val_dataset

    @torch.no_grad()
    def validate(self) -> dict:
        """Metrics of the current networks where ground truth exists: depth (median-scaled), flow EPE, semantic mIoU.

        ΩNet networks are measured on what the node would publish for each frame (``train.scene.predict_triplet``:
        the engine's inference path, fp32, at the frame's own size)."""
        from ..evaluate.depth import DepthEvaluator
        from ..evaluate.flow import FlowEvaluator
        from ..evaluate.semantic import SemanticEvaluator

        dataset = self._validation_dataset()
        max_items = int(self.config["validation"]["max_items"])
        nets = {k: v for k, v in self.nets.items()}
        for v in nets.values():
            v.eval()
        depth_evals: dict = {}
        flow_eval, sem_eval = FlowEvaluator(), SemanticEvaluator()
        n_flow = 0
        indices = range(len(dataset))
        if 0 < max_items < len(dataset):
            indices = np.linspace(0, len(dataset) - 1, max_items).round().astype(int).tolist()
        for index in indices:
            s, c = dataset.items[index]
            seq = dataset.sequences[s]
            record = seq.frames[c]
            if record.depth is None and record.flow_fw is None and record.semantic is None:
                continue
            if "moreau" in nets:
                item = dataset[index]
                if item is not None and record.depth is not None:
                    from .moreau_stage import predict_depth

                    pred = predict_depth(nets, item["cur"][None].to(self.device))[0, 0].cpu().numpy()
                    ev = depth_evals.setdefault(seq.depth_crop, DepthEvaluator(median_scaling=True, crop=seq.depth_crop))
                    ev.add(pred, np.asarray(record.depth(), np.float32))
                continue
            # The node's outputs for this frame (the engine's inference path, at the frame's own size).
            with_flow = record.flow_fw is not None and self.stage.number >= 2
            scene = predict_triplet(nets, dataset, index, device=self.device, compute_flow=with_flow)
            if scene is None:
                continue
            if record.depth is not None:
                ev = depth_evals.setdefault(seq.depth_crop, DepthEvaluator(median_scaling=True, crop=seq.depth_crop))
                ev.add(scene.depth[0, 0].cpu().numpy(), np.asarray(record.depth(), np.float32))
            if record.semantic is not None:
                sem_eval.add(scene.semantic[0].cpu().numpy(), np.asarray(record.semantic()))
            if with_flow:
                flow_eval.add(scene.flow[0].permute(1, 2, 0).cpu().numpy(), np.asarray(record.flow_fw(), np.float32))
                n_flow += 1
        self._set_train_modes()
        metrics: dict = {"val_source": "val_data" if self.val_specs else "train_data"}
        for crop, ev in depth_evals.items():
            if ev.per_image:
                res = ev.result()
                metrics.update({f"depth_{k}": res[k] for k in ("abs_rel", "sq_rel", "rmse", "a1")})
                metrics["depth_images"] = res["num_images"]
        if sem_eval.num_images and sem_eval.confusion.sum():
            res = sem_eval.result()
            metrics.update({"semantic_miou": res["miou"], "semantic_pixel_acc": res["pixel_acc"]})
        if n_flow:
            res = flow_eval.result()
            metrics.update({f"flow_{k}": v for k, v in res.items() if isinstance(v, (int, float))})
        return metrics


def train_from_config(config: dict, data_specs: list[str], out_dir, **kwargs) -> dict:
    """Convenience: build a :class:`Trainer` and run it; returns the final validation metrics."""
    steps = kwargs.pop("steps", None)
    return Trainer(config, data_specs, out_dir, **kwargs).train(steps)


__all__ = ["Trainer", "TrainingError", "DEFAULT_CONFIG", "load_config", "merge_config", "train_from_config"]
