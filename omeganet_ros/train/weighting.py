"""Multi-task loss weighting (Moreau et al., UMONS): equal, Dynamic Weight Average, homoscedastic uncertainty.

Each weighting turns a dict of per-task scalar losses into one scalar to
minimise. All are ``nn.Module``s so that their state (DWA's loss history, the
uncertainty's learned log-variances) goes into the checkpoint and resumes
exactly.

* ``equal``: L = Σ_k L_k.
* ``dwa`` — Dynamic Weight Average (Liu, Johns, Davison, CVPR 2019):
  w_k = K·exp(r_k / T) / Σ_i exp(r_i / T), r_k = L̄_k(n−1) / L̄_k(n−2), with
  L̄_k(n) the mean of task k's loss over period n (an epoch in the paper, a
  configurable number of steps here) and T = 2. During the first two periods
  all weights are 1.
* ``uncertainty`` — homoscedastic uncertainty (Kendall, Gal, Cipolla, CVPR
  2018): L = Σ_k exp(−s_k)·L_k + s_k with learned s_k = log σ_k²
  (the form used by Liu et al.'s MTAN code and by Moreau et al.; the constant
  ½ factors of the regression derivation are folded into s_k).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class EqualWeighting(nn.Module):
    """Sum of the task losses."""

    def __init__(self, tasks):
        super().__init__()
        self.tasks = list(tasks)

    def weights(self) -> dict[str, float]:
        return {k: 1.0 for k in self.tasks}

    def forward(self, task_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        check_tasks(self.tasks, task_losses)
        return sum(task_losses[k] for k in self.tasks)


class DynamicWeightAverage(nn.Module):
    """Dynamic Weight Average with temperature ``T``, loss averages over ``period`` steps."""

    def __init__(self, tasks, temperature: float = 2.0, period: int = 100):
        super().__init__()
        if temperature <= 0 or period < 1:
            raise ValueError(f"DWA needs temperature > 0 and period ≥ 1, got T={temperature}, period={period}")
        self.tasks = list(tasks)
        self.temperature = float(temperature)
        self.period = int(period)
        n = len(self.tasks)
        # Buffers so the state travels with state_dict(): running sums of the current
        # period and the means of the two previous ones (NaN = not yet seen).
        self.register_buffer("running_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("running_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("previous_means", torch.full((2, n), float("nan"), dtype=torch.float64))
        self.register_buffer("current_weights", torch.ones(n, dtype=torch.float64))

    def weights(self) -> dict[str, float]:
        return {k: float(w) for k, w in zip(self.tasks, self.current_weights)}

    def _update_weights(self) -> None:
        older, newer = self.previous_means[0], self.previous_means[1]
        if torch.isnan(older).any() or torch.isnan(newer).any():
            self.current_weights.fill_(1.0)
            return
        ratio = newer / older.clamp(min=1e-12)
        self.current_weights.copy_(len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0))

    def forward(self, task_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        check_tasks(self.tasks, task_losses)
        total = sum(float(w) * task_losses[k] for k, w in zip(self.tasks, self.current_weights))
        if self.training:
            with torch.no_grad():
                values = torch.tensor([float(task_losses[k].detach()) for k in self.tasks], dtype=torch.float64,
                                      device=self.running_sum.device)
                self.running_sum += values
                self.running_count += 1
                if int(self.running_count) >= self.period:
                    self.previous_means[0] = self.previous_means[1].clone()
                    self.previous_means[1] = self.running_sum / self.running_count
                    self.running_sum.zero_()
                    self.running_count.zero_()
                    self._update_weights()
        return total


class UncertaintyWeighting(nn.Module):
    """Homoscedastic uncertainty weighting with one learned log-variance per task (initialised to 0)."""

    def __init__(self, tasks):
        super().__init__()
        self.tasks = list(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def weights(self) -> dict[str, float]:
        return {k: float(torch.exp(-s)) for k, s in zip(self.tasks, self.log_vars.detach())}

    def forward(self, task_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        check_tasks(self.tasks, task_losses)
        return sum(torch.exp(-s) * task_losses[k] + s for k, s in zip(self.tasks, self.log_vars))


WEIGHTINGS = {"equal": EqualWeighting, "dwa": DynamicWeightAverage, "uncertainty": UncertaintyWeighting}


def check_tasks(tasks, task_losses) -> None:
    missing = [k for k in tasks if k not in task_losses]
    if missing:
        raise ValueError(f"task losses missing {missing}; got {sorted(task_losses)}")


def build_weighting(name: str, tasks, **options) -> nn.Module:
    """Weighting by name (``equal``, ``dwa``, ``uncertainty``) for the given task names.

    ``options``: ``temperature`` and ``period`` for DWA; ignored by the others.
    """
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; expected one of {sorted(WEIGHTINGS)}")
    tasks = list(tasks)
    if not tasks:
        raise ValueError("loss weighting needs at least one task")
    if name == "dwa":
        return DynamicWeightAverage(tasks, temperature=options.get("temperature", 2.0), period=options.get("period", 100))
    return WEIGHTINGS[name](tasks)
