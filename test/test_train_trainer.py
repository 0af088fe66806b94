"""The trainer: exact resume, NaN stop, Ctrl-C, unreadable frames, the three stages, the CLI."""
import copy
import csv
import json

import pytest
import torch

from omeganet_ros.checkpoint import load_checkpoint, save_checkpoint
from omeganet_ros.classes import CAR, IGNORE_ID, PERSON, ROAD
from omeganet_ros.cli.train import main as train_main
from omeganet_ros.train import stages
from omeganet_ros.train.trainer import Trainer, TrainingError, merge_config, DEFAULT_CONFIG
from test_train_helpers import one_thread, TINY, corridor, write_image_folder, write_sequence  # noqa: F401 (one_thread: autouse fixture)



@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    images, depths, K = corridor(8)
    return write_sequence(tmp_path_factory.mktemp("corridor"), images, depths, K)


def config(**overrides):
    return merge_config(merge_config(DEFAULT_CONFIG, TINY), overrides)


def run(sequence, out, steps, resume=None, **overrides):
    trainer = Trainer(config(**overrides), [f"sequence:{sequence}"], out, resume=resume, progress=False)
    trainer.train(steps)
    return trainer


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(sequence, tmp_path):
    # 6 triplets, batch 2: 3 steps per epoch; stopping at step 2 resumes mid-epoch and crosses an epoch.
    full = run(sequence, tmp_path / "full", 4, weighting={"name": "dwa", "period": 1})
    run(sequence, tmp_path / "part", 2, weighting={"name": "dwa", "period": 1})
    resumed = run(sequence, tmp_path / "part", 4, resume=tmp_path / "part" / "last.pt",
                  weighting={"name": "dwa", "period": 1})
    assert resumed.step == 4
    for name in ("dsnet", "camnet"):
        a, b = full.nets[name].state_dict(), resumed.nets[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resume"
    assert full.weighting.weights() == resumed.weighting.weights()
    ckpt = load_checkpoint(tmp_path / "part" / "last.pt")
    assert ckpt.provenance["step"] == 4 and ckpt.provenance["stage"] == 1
    assert ckpt.provenance["data"] == [f"sequence:{sequence}"]
    assert ckpt.provenance["config"]["size"] == [128, 64]
    assert "git_commit" in ckpt.provenance and "depth_abs_rel" in ckpt.provenance["metrics"]


def _failing_compute(monkeypatch, at_call, action):
    original = stages.DepthPoseStage.compute
    calls = {"n": 0}

    def compute(self, *args, **kwargs):
        calls["n"] += 1
        task_losses, logs = original(self, *args, **kwargs)
        if calls["n"] >= at_call:
            if action == "nan":
                task_losses["depth"] = task_losses["depth"] * float("nan")
            else:
                raise KeyboardInterrupt
        return task_losses, logs

    monkeypatch.setattr(stages.DepthPoseStage, "compute", compute)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(sequence, tmp_path, monkeypatch):
    _failing_compute(monkeypatch, at_call=4, action="nan")
    with pytest.raises(TrainingError, match=r"non-finite training loss at step 4.*last good checkpoint: .*last.pt"):
        run(sequence, tmp_path, 10, checkpoint_every=2)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt.provenance["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt.state_dicts["dsnet"].values() if v.is_floating_point())


def test_ctrl_c_saves_a_checkpoint(sequence, tmp_path, monkeypatch):
    _failing_compute(monkeypatch, at_call=3, action="interrupt")
    with pytest.raises(KeyboardInterrupt):
        run(sequence, tmp_path, 10)
    assert load_checkpoint(tmp_path / "last.pt").extra["trainer"]["step"] == 2


def test_unreadable_frames_are_skipped_and_counted(tmp_path):
    images, _, _ = corridor(8)
    folder = write_image_folder(tmp_path / "frames", images)
    broken = sorted(folder.iterdir())[4]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.warns(UserWarning, match="skipping triplet"):
        trainer = Trainer(config(), [f"folder:{folder}"], tmp_path / "out", progress=False)
        trainer.train(4)
    assert trainer.step == 4
    assert trainer.skipped >= 3  # centres 3, 4, 5 need the broken frame; each epoch meets them
    ckpt = load_checkpoint(tmp_path / "out" / "last.pt")
    assert ckpt.provenance["skipped_triplets"] == trainer.skipped
    rows = list(csv.DictReader((tmp_path / "out" / "log.csv").open()))
    assert int(rows[-2]["skipped_triplets"]) == trainer.skipped


def test_three_stages_chain_and_freeze_what_they_should(sequence, tmp_path):
    s1 = run(sequence, tmp_path / "s1", 1)
    s2 = run(sequence, tmp_path / "s2", 2, stage=2, init=str(tmp_path / "s1" / "last.pt"))
    c1, c2 = load_checkpoint(tmp_path / "s1" / "last.pt"), load_checkpoint(tmp_path / "s2" / "last.pt")
    assert c2.provenance["stage"] == 2 and c2.provenance["trained"] == ["ofnet"]
    assert c1.provenance["networks_trained_by_stage"] == {"dsnet": 1, "camnet": 1, "ofnet": None}
    assert c2.provenance["networks_trained_by_stage"] == {"dsnet": 1, "camnet": 1, "ofnet": 2}
    assert all(torch.equal(c1.state_dicts["dsnet"][k], c2.state_dicts["dsnet"][k]) for k in c1.state_dicts["dsnet"])
    assert any(not torch.equal(c1.state_dicts["ofnet"][k], c2.state_dicts["ofnet"][k]) for k in c1.state_dicts["ofnet"])
    assert "flow_epe_all" not in s2.metrics  # no flow ground truth in this sequence
    s3 = run(sequence, tmp_path / "s3", 2, stage=3, init=str(tmp_path / "s2" / "last.pt"))
    c3 = load_checkpoint(tmp_path / "s3" / "last.pt")
    assert c3.provenance["stage"] == 3 and c3.provenance["tasks"] == ["distillation", "photometric"]
    teacher = c3.extra["teacher_ofnet"]
    assert all(torch.equal(teacher[k], c2.state_dicts["ofnet"][k]) for k in teacher)  # the teacher stays frozen
    assert any(not torch.equal(c3.state_dicts["ofnet"][k], teacher[k]) for k in teacher)  # the student learns
    assert s1.metrics["depth_abs_rel"] > 0 and s3.step == 2
    s3b = run(sequence, tmp_path / "s3", 3, stage=3, init=str(tmp_path / "s2" / "last.pt"),
              resume=tmp_path / "s3" / "last.pt")
    assert s3b.step == 3
    assert all(torch.equal(s3b.nets["teacher"].state_dict()[k].cpu(), teacher[k]) for k in teacher)


def test_stage3_takes_each_network_from_the_checkpoint_that_trained_it(sequence, tmp_path):
    # Stages 1 and 2 trained independently (e.g. in parallel), then combined by a list of init checkpoints.
    run(sequence, tmp_path / "s1", 1, architecture="legacy", networks={"camnet": {"pose_negative_slope": 0.1}})
    run(sequence, tmp_path / "s2", 1, stage=2, architecture="legacy")
    c1, c2 = load_checkpoint(tmp_path / "s1" / "last.pt"), load_checkpoint(tmp_path / "s2" / "last.pt")
    assert c2.provenance["networks_trained_by_stage"] == {"dsnet": None, "camnet": None, "ofnet": 2}
    s3 = run(sequence, tmp_path / "s3", 1, stage=3, init=[str(tmp_path / "s1" / "last.pt"), str(tmp_path / "s2" / "last.pt")])
    c3 = load_checkpoint(tmp_path / "s3" / "last.pt")
    assert c3.provenance["networks_trained_by_stage"] == {"dsnet": 1, "camnet": 1, "ofnet": 3}
    # Stage 1's CamNet architecture (its activation slope) comes with its weights, not from stage 3's config.
    assert c3.architecture["camnet"]["kwargs"]["pose_negative_slope"] == 0.1
    assert s3.nets["camnet"].pose_negative_slope == 0.1
    for name in ("dsnet", "camnet"):  # stage 1's, not stage 2's untrained copies
        assert all(torch.equal(c1.state_dicts[name][k], c3.state_dicts[name][k]) for k in c1.state_dicts[name])
        assert any(not torch.equal(c2.state_dicts[name][k], c3.state_dicts[name][k]) for k in c2.state_dicts[name])
    assert all(torch.equal(c3.extra["teacher_ofnet"][k], c2.state_dicts["ofnet"][k]) for k in c2.state_dicts["ofnet"])
    assert c3.provenance["init"] == [str(tmp_path / "s1" / "last.pt"), str(tmp_path / "s2" / "last.pt")]
    assert s3.step == 1


def test_init_entry_takes_only_the_networks_it_names(sequence, tmp_path, capsys):
    # Two stage-1 runs; a third takes DSNet (and the rest) from the first and only CamNet from the second.
    run(sequence, tmp_path / "a", 1)
    run(sequence, tmp_path / "b", 2, seed=7)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    mixed = run(sequence, tmp_path / "m", 0, init=[str(tmp_path / "a" / "last.pt"), f"{tmp_path / 'b' / 'last.pt'}:camnet"])

    def same(net, ckpt, name):
        return all(torch.equal(net.state_dict()[k].cpu(), ckpt.state_dicts[name][k]) for k in ckpt.state_dicts[name])

    assert same(mixed.nets["dsnet"], a, "dsnet") and not same(mixed.nets["dsnet"], b, "dsnet")
    assert same(mixed.nets["camnet"], b, "camnet") and not same(mixed.nets["camnet"], a, "camnet")
    with pytest.raises(ValueError, match="network names"):
        run(sequence, tmp_path / "x", 0, init=f"{tmp_path / 'a' / 'last.pt'}:posenet")
    save_checkpoint(tmp_path / "depth_only.pt", {"dsnet": mixed.nets["dsnet"]}, input_size=(128, 64))
    with pytest.raises(ValueError, match="holds no camnet"):
        run(sequence, tmp_path / "y", 0, init=[str(tmp_path / "a" / "last.pt"), f"{tmp_path / 'depth_only.pt'}:camnet"])
    # Stage 4 composes the same way, and its checkpoint says which networks came from where.
    cfg = tmp_path / "stage4.yaml"
    cfg.write_text("stage: 4\nsize: [128, 64]\n")
    entries = [str(tmp_path / "a" / "last.pt"), f"{tmp_path / 'b' / 'last.pt'}:camnet"]
    assert train_main(["--config", str(cfg), "--data", "synth:seed=4,frames=4", "--init", entries[0], "--init", entries[1],
                       "--out", str(tmp_path / "s4"), "--device", "cpu"]) == 0
    calibrated = load_checkpoint(tmp_path / "s4" / "calibrated.pt")
    assert calibrated.provenance["composed_from"] == entries
    for name, source in (("dsnet", a), ("camnet", b), ("ofnet", a)):
        assert all(torch.equal(calibrated.state_dicts[name][k], source.state_dicts[name][k]) for k in source.state_dicts[name])
    capsys.readouterr()


def test_cli_trains_and_reports_json(sequence, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("stage: 1\nsize: [128, 64]\nbatch_size: 2\nsteps: 2\nvalidation:\n  max_items: 2\n")
    code = train_main(["--config", str(cfg), "--data", f"sequence:{sequence}", "--out", str(tmp_path / "o"),
                       "--no-progress", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["step"] == 2 and report["checkpoint"].endswith("last.pt")
    assert train_main(["--config", str(cfg), "--data", "nonsense:/x", "--out", str(tmp_path / "o2")]) == 2
    assert "data spec 'nonsense:/x'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: 1\nlearning_rate: 3\n")
    assert train_main(["--config", str(bad), "--data", f"sequence:{sequence}", "--out", str(tmp_path / "o3")]) == 2
    assert "unknown training config key 'learning_rate'" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_stage_and_runs_never_clobber(sequence, tmp_path):
    run(sequence, tmp_path / "s1", 1)
    with pytest.raises(ValueError, match="already holds a run"):
        run(sequence, tmp_path / "s1", 1)
    with pytest.raises(ValueError, match="stage 1"):
        run(sequence, tmp_path / "s2", 2, stage=2, resume=tmp_path / "s1" / "last.pt")


def test_synthetic_world_semantics_flow_validation_and_tau_calibration(tmp_path, capsys):
    data = "synth:seed=3,frames=6,labels=gt"
    s1 = Trainer(config(), [data], tmp_path / "s1", progress=False)
    m1 = s1.train(1)
    assert s1.tasks == ["depth", "semantic"]  # ground truth as proxy labels turns the semantic loss on
    assert 0 <= m1["semantic_miou"] <= 1 and m1["depth_abs_rel"] > 0
    m2 = Trainer(config(stage=2, init=str(tmp_path / "s1" / "last.pt")), ["synth:seed=3,frames=6"], tmp_path / "s2",
                 progress=False).train(1)
    assert m2["flow_epe_all"] > 0  # the synthetic world has flow ground truth
    cfg = tmp_path / "stage4.yaml"
    cfg.write_text("stage: 4\nsize: [128, 64]\n")
    code = train_main(["--config", str(cfg), "--data", "synth:seed=4,frames=5", "--init", str(tmp_path / "s2" / "last.pt"),
                       "--out", str(tmp_path / "s4"), "--device", "cpu"])
    assert code == 0
    result = json.loads((tmp_path / "s4" / "motion_threshold.json").read_text())
    assert 0.05 <= result["threshold"] <= 0.95 and result["num_images"] == 3
    assert len(result["per_threshold"]) == 19
    assert load_checkpoint(tmp_path / "s4" / "calibrated.pt").provenance["motion_threshold"] == result["threshold"]


def test_ctrl_c_inside_a_step_resumes_exactly(sequence, tmp_path, monkeypatch):
    full = run(sequence, tmp_path / "full", 4)
    with monkeypatch.context() as patch:
        _failing_compute(patch, at_call=3, action="interrupt")  # inside step 3: steps 1–2 done
        with pytest.raises(KeyboardInterrupt):
            run(sequence, tmp_path / "part", 4)
    resumed = run(sequence, tmp_path / "part", 4, resume=tmp_path / "part" / "last.pt")
    assert resumed.step == 4
    for name in ("dsnet", "camnet"):
        a, b = full.nets[name].state_dict(), resumed.nets[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after a Ctrl-C resume"


class _FastClock:
    """Stands in for time.monotonic: every call advances 20 s, so a 1-minute budget ends after a few steps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 20.0
        return self.now


def test_max_minutes_stops_cleanly_with_a_resumable_checkpoint(sequence, tmp_path, capsys, monkeypatch):
    from omeganet_ros.train import trainer as trainer_module

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("stage: 1\nsize: [128, 64]\nbatch_size: 2\nsteps: 50\nvalidation:\n  max_items: 2\n")
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module.time, "monotonic", _FastClock())
        code = train_main(["--config", str(cfg), "--data", f"sequence:{sequence}", "--out", str(tmp_path / "o"),
                           "--no-progress", "--device", "cpu", "--max-minutes", "1"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stopped_by_budget"] is True
    assert 1 <= report["step"] < 50
    assert load_checkpoint(tmp_path / "o" / "last.pt").extra["trainer"]["step"] == report["step"]
    # Without a budget the same run goes to the configured steps, and --resume continues the stopped one.
    code = train_main(["--config", str(cfg), "--data", f"sequence:{sequence}", "--out", str(tmp_path / "o"),
                       "--no-progress", "--device", "cpu", "--steps", str(report["step"] + 1),
                       "--resume", str(tmp_path / "o" / "last.pt")])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["step"] == report["step"] + 1
    assert train_main(["--config", str(cfg), "--data", f"sequence:{sequence}", "--out", str(tmp_path / "o4"),
                       "--max-minutes", "0"]) == 2
    assert "--max-minutes must be positive" in capsys.readouterr().err


def _log_steps(path):
    with open(path, newline="") as f:
        return [float(r["step"]) for r in csv.DictReader(f) if r.get("loss")]


def test_log_never_repeats_steps_after_a_resume_and_appends_without_rewriting(sequence, tmp_path, monkeypatch):
    import os as os_module

    import shutil

    # A hard kill (kill -9) after step 4 was logged, while the newest checkpoint is from step 2: steps 3–4 are redone.
    run(sequence, tmp_path, 2, log_every=1)
    shutil.copy(tmp_path / "last.pt", tmp_path / "step2.pt")
    run(sequence, tmp_path, 4, log_every=1, resume=tmp_path / "last.pt")
    shutil.copy(tmp_path / "step2.pt", tmp_path / "last.pt")
    replaced = []
    real_replace = os_module.replace
    monkeypatch.setattr("omeganet_ros.train.trainer.os.replace",
                        lambda a, b: (replaced.append(str(b)), real_replace(a, b)))
    run(sequence, tmp_path, 6, log_every=1, resume=tmp_path / "last.pt")
    steps = _log_steps(tmp_path / "log.csv")
    assert steps == sorted(set(steps)) and steps[-1] == 6, steps
    training_rewrites = [p for p in replaced if p.endswith("log.csv")]
    assert len(training_rewrites) <= 2, f"log.csv rewritten {len(training_rewrites)} times for 4 rows"


def test_a_failed_save_keeps_the_previous_checkpoint_and_says_so(sequence, tmp_path, monkeypatch):
    from omeganet_ros import checkpoint as checkpoint_module

    run(sequence, tmp_path, 2)
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_full)
    with pytest.raises(TrainingError, match=r"cannot write the checkpoint at step 4 .*previous .*last.pt is intact"):
        run(sequence, tmp_path, 4, resume=tmp_path / "last.pt")
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    assert load_checkpoint(tmp_path / "last.pt").extra["trainer"]["step"] == 2
    assert not list(tmp_path.glob("last.pt.*.tmp"))


def test_ctrl_c_during_a_save_finishes_the_save_first_and_orphans_are_removed(sequence, tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import threading

    from omeganet_ros import checkpoint as checkpoint_module

    if "openvino" in sys.modules and not os.environ.get("OMEGANET_TEST_ISOLATED"):
        # Measured: once earlier tests have loaded OpenVINO into this process, the self-sent SIGINT below ends the
        # interpreter (no Python traceback). The same test then runs in a fresh interpreter.
        test_id = f"{__file__}::test_ctrl_c_during_a_save_finishes_the_save_first_and_orphans_are_removed"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_id],
                              env={**os.environ, "OMEGANET_TEST_ISOLATED": "1"}, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        return

    orphan = tmp_path / "last.pt.k9x.tmp"
    tmp_path.mkdir(exist_ok=True)
    orphan.write_bytes(b"left by kill -9")
    real_save = torch.save

    def interrupted_save(obj, f, *args, **kwargs):
        # Ctrl-C half-way through the write, to the main thread as a terminal's would be handled (a process-wide
        # signal may land on a worker thread of a native library loaded by earlier tests, e.g. OpenVINO's)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run(sequence, tmp_path, 2)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    assert load_checkpoint(tmp_path / "last.pt").extra["trainer"]["step"] == 2
    assert not orphan.exists()


def test_frozen_networks_and_batch_norm_on_running_statistics(sequence, tmp_path):
    s1 = run(sequence, tmp_path / "s1", 1)
    before = {name: copy.deepcopy(net.state_dict()) for name, net in s1.nets.items()}
    cont = run(sequence, tmp_path / "cont", 2, init=str(tmp_path / "s1" / "last.pt"), frozen_networks=["dsnet"],
               batch_norm_frozen=["camnet"])
    after = {name: net.state_dict() for name, net in cont.nets.items()}
    assert all(torch.equal(before["dsnet"][k], after["dsnet"][k]) for k in before["dsnet"])  # DSNet kept
    camnet_stats = [k for k in before["camnet"] if k.endswith(("running_mean", "running_var"))]
    assert camnet_stats and all(torch.equal(before["camnet"][k], after["camnet"][k]) for k in camnet_stats)
    changed = [k for k in before["camnet"] if k.endswith("weight") and not torch.equal(before["camnet"][k], after["camnet"][k])]
    assert changed  # CamNet still learns
    assert not any(m.training for m in cont.nets["camnet"].modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert cont.nets["camnet"].training and not cont.nets["dsnet"].training  # also after validation
    with pytest.raises(ValueError, match="frozen_networks \\['ofnet'\\] are not trained by stage 1"):
        Trainer(config(frozen_networks=["ofnet"]), [f"sequence:{sequence}"], tmp_path / "bad", progress=False).train(1)


def test_config_network_arguments_apply_to_an_init_checkpoint_and_the_still_triplet_loss(sequence, tmp_path):
    # stage 1b of the recipe: a CamNet trained without reversal symmetry continues with it, same weights
    run(sequence, tmp_path / "s1", 1)
    before = load_checkpoint(tmp_path / "s1" / "last.pt")
    assert before.architecture["camnet"]["kwargs"]["reversal_symmetric"] is False
    cont = run(sequence, tmp_path / "sym", 2, init=str(tmp_path / "s1" / "last.pt"), frozen_networks=["dsnet"],
               batch_norm_frozen=["camnet"], networks={"camnet": {"reversal_symmetric": True}},
               loss={"still_triplet_weight": 1.0, "pose_consistency_weight": 1.0})
    assert cont.nets["camnet"].reversal_symmetric
    saved = load_checkpoint(tmp_path / "sym" / "last.pt")
    assert saved.architecture["camnet"]["kwargs"]["reversal_symmetric"] is True
    with open(tmp_path / "sym" / "log.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("still_motion")]
    assert rows and all(float(row["still_motion"]) > 0 and float(row["pose_acceleration"]) > 0 for row in rows)
    with open(tmp_path / "s1" / "log.csv") as f:
        fields = csv.DictReader(f).fieldnames or []
    assert "still_motion" not in fields and "pose_acceleration" not in fields  # off by default
    with pytest.raises(ValueError, match="networks.camnet .* cannot be applied"):
        run(sequence, tmp_path / "bad", 1, init=str(tmp_path / "s1" / "last.pt"),
            networks={"camnet": {"encoder_channels": [8, 16, 24, 32, 48]}})


def depth_loss_argument(monkeypatch, name: str) -> list:
    """The values of ``depth_pose_loss``'s keyword ``name`` in the calls that follow, in order."""
    seen = []
    original = stages.losses.depth_pose_loss

    def spy(*args, **kwargs):
        seen.append(kwargs[name])
        return original(*args, **kwargs)

    monkeypatch.setattr(stages.losses, "depth_pose_loss", spy)
    return seen


def test_photometric_resolution_defaults_per_stage_and_reaches_the_depth_loss(sequence, tmp_path, monkeypatch):
    # Unset, stage 1 compares at the input resolution (monodepth2's, the recipe's) and the flow stages per level
    # (UnFlow's); the shared default once silently put stage 1 on the flow stages' 'level'.
    assert DEFAULT_CONFIG["loss"]["photometric_resolution"] is None
    assert stages.DepthPoseStage(config()).photometric_resolution == "input"
    assert stages.TeacherFlowStage(config()).photometric_resolution == "level"
    assert stages.DepthPoseStage(config(loss={"photometric_resolution": "level"})).photometric_resolution == "level"
    with pytest.raises(ValueError, match="loss.photometric_resolution"):
        stages.DepthPoseStage(config(loss={"photometric_resolution": "half"}))
    seen = depth_loss_argument(monkeypatch, "resolution")
    run(sequence, tmp_path / "input", 1)
    run(sequence, tmp_path / "level", 1, loss={"photometric_resolution": "level"})
    assert seen[0] == "input" and seen[-1] == "level"


def test_ignore_dynamic_leaves_the_proxy_labels_movable_classes_out_of_the_depth_loss(sequence, tmp_path, monkeypatch):
    labels = torch.full((1, 4, 6), ROAD)
    labels[0, 1:3, 2:4] = CAR
    labels[0, 0, 0] = PERSON
    labels[0, 3, 5] = IGNORE_ID
    mask = stages.DepthPoseStage.dynamic_pixels(labels, (8, 12))
    assert mask.shape == (1, 1, 8, 12)
    assert mask[0, 0, 2:6, 4:8].all() and mask[0, 0, :2, :2].all()
    assert int(mask.sum()) == 16 + 4  # the car and the person; road and unlabelled pixels count
    seen = depth_loss_argument(monkeypatch, "ignore")
    labelled = ["synth:seed=3,frames=6,labels=gt"]
    Trainer(config(), labelled, tmp_path / "off", progress=False).train(1)
    Trainer(config(loss={"ignore_dynamic": True}), labelled, tmp_path / "on", progress=False).train(1)
    run(sequence, tmp_path / "unlabelled", 1, loss={"ignore_dynamic": True})
    assert seen[0] is None  # off by default
    assert seen[2] is None or not seen[2].any()  # frames without labels keep every pixel
    assert seen[1].dtype == torch.bool and seen[1].any() and not seen[1].all()


def test_trained_parts_trains_the_semantic_head_alone_and_keeps_depth_exactly(tmp_path):
    labelled = ["synth:seed=3,frames=6,labels=gt"]
    Trainer(config(), labelled, tmp_path / "s1", progress=False).train(1)
    before = load_checkpoint(tmp_path / "s1" / "last.pt")
    head = Trainer(config(init=str(tmp_path / "s1" / "last.pt"), frozen_networks=["camnet"],
                          trained_parts={"dsnet": ["semantic"]}, batch_norm_momentum=0.5),
                   labelled, tmp_path / "head", progress=False)
    head.train(2)
    after = head.nets["dsnet"].state_dict()
    rest = [k for k in after if not k.startswith("semantic.")]
    assert rest and all(torch.equal(before.state_dicts["dsnet"][k], after[k]) for k in rest)  # BN statistics too
    assert any(not torch.equal(before.state_dicts["dsnet"][k], after[k]) for k in after if k.startswith("semantic."))
    assert head.nets["dsnet"].semantic.training and not head.nets["dsnet"].encoder.training
    with pytest.raises(ValueError, match="trained_parts.dsnet: \\['semantics'\\] not among DSNet's submodules"):
        Trainer(config(trained_parts={"dsnet": ["semantics"]}), labelled, tmp_path / "bad", progress=False).train(1)
    with pytest.raises(ValueError, match="trained_parts: 'ofnet' is not a network this run trains"):
        Trainer(config(trained_parts={"ofnet": ["encoder"]}), labelled, tmp_path / "bad2", progress=False).train(1)
