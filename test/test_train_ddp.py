"""Multi-process training (DDP, gloo backend, 2 CPU processes) keeps the ranks' weights identical."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from omeganet_ros.checkpoint import load_checkpoint
from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config
from test_train_helpers import TINY, corridor, write_sequence


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, sequence: str, out: str) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    config = merge_config(merge_config(DEFAULT_CONFIG, TINY), {"batch_size": 1})
    trainer = Trainer(config, [f"sequence:{sequence}"], out, device="cpu", progress=False)
    trainer.train(3)
    assert not dist.is_initialized()  # the trainer created the process group and tore it down
    state = {f"{name}.{k}": v.clone() for name in ("dsnet", "camnet") for k, v in trainer.nets[name].named_parameters()}
    torch.save(state, f"{out}/rank{rank}.pt")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not available")
def test_two_cpu_processes_train_the_same_weights(tmp_path):
    images, depths, K = corridor(6)
    sequence = write_sequence(tmp_path / "seq", images, depths, K)
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(sequence), str(out)), nprocs=2, join=True)
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "ranks diverged"
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.provenance["world_size"] == 2 and ckpt.provenance["step"] == 3
    # The weights did move (the ranks did not merely stay at the same initialisation).
    initial = merge_config(DEFAULT_CONFIG, {})  # same seed → same initial weights
    torch.manual_seed(initial["seed"])
    from omeganet_ros.nets import build_networks

    init = build_networks()["dsnet"]
    moved = [not torch.equal(p, rank0[f"dsnet.{k}"]) for k, p in init.named_parameters()]
    assert any(moved)
    # Each saved network equals rank 0's live weights.
    assert all(torch.equal(ckpt.state_dicts["dsnet"][k], rank0[f"dsnet.{k}"]) for k, _ in init.named_parameters())
