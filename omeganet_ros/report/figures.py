"""Plots of a replay: the estimated trajectory against ground truth, and latency over time (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from omeganet_ros.evaluate.odometry import umeyama_alignment


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def align_positions(pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """Predicted N×3 positions aligned to ground truth by a similarity transform (Umeyama, 7 DoF).

    Returns (aligned N×3, scale). Monocular trajectories are up to scale, so this is how they are drawn.
    """
    pred_xyz = np.asarray(pred_xyz, np.float64)
    gt_xyz = np.asarray(gt_xyz, np.float64)
    if pred_xyz.shape != gt_xyz.shape or pred_xyz.ndim != 2 or pred_xyz.shape[1] != 3:
        raise ValueError(f"positions must be two N×3 arrays of equal shape, got {pred_xyz.shape} and {gt_xyz.shape}")
    if len(pred_xyz) < 2 or np.allclose(pred_xyz, pred_xyz[0]):
        return pred_xyz - pred_xyz[0] + gt_xyz[0], 1.0
    rotation, translation, scale = umeyama_alignment(pred_xyz.T, gt_xyz.T, with_scale=True)
    return (scale * (rotation @ pred_xyz.T)).T + translation, float(scale)


def _finish(plt, fig, ax, title: str, path: str | Path) -> Path:
    """Grid, legend and title, then write the figure as a PNG at ``path`` and free it."""
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_trajectory(path: str | Path, pred_xyz: np.ndarray, gt_xyz: np.ndarray | None = None,
                    title: str = "camera trajectory") -> Path:
    """Top view of the estimated camera positions (N×3), Sim(3)-aligned to the ground truth when it
    is given. The view is the plane of the two axes along which the (ground-truth) path extends most
    (x–z for a forward-driving camera in optical axes). Writes a PNG."""
    plt = _pyplot()
    pred_xyz = np.asarray(pred_xyz, np.float64)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    reference = pred_xyz if gt_xyz is None else np.asarray(gt_xyz, np.float64)
    a, b = sorted(np.argsort(np.ptp(reference, axis=0))[-2:]) if len(reference) else (0, 2)
    if gt_xyz is not None:
        gt_xyz = np.asarray(gt_xyz, np.float64)
        aligned, scale = align_positions(pred_xyz, gt_xyz)
        ax.plot(gt_xyz[:, a], gt_xyz[:, b], "k-", lw=2, label="ground truth")
        ax.plot(aligned[:, a], aligned[:, b], "-", color="tab:red", lw=1.5,
                label=f"estimated (Sim(3)-aligned, scale {scale:.3g})")
        ax.plot(gt_xyz[0, a], gt_xyz[0, b], "go", label="start")
    else:
        ax.plot(pred_xyz[:, a], pred_xyz[:, b], "-", color="tab:red", lw=1.5, label="estimated (no ground truth)")
        ax.plot(pred_xyz[0, a], pred_xyz[0, b], "go", label="start")
    ax.set_xlabel(f"{'xyz'[a]} (m)")
    ax.set_ylabel(f"{'xyz'[b]} (m)")
    ax.set_aspect("equal", adjustable="datalim")
    return _finish(plt, fig, ax, title, path)


def plot_latency(path: str | Path, times_s: np.ndarray, latencies_ms: np.ndarray,
                 engine_ms: np.ndarray | None = None, title: str = "latency over the run",
                 trigger_ms: np.ndarray | None = None) -> Path:
    """Latency (ms) of every processed frame against the time it was offered (s from the start). Writes a PNG.

    ``trigger_ms``: latency from the frame that completed the frame's triple (paper mode: the next frame)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    times_s = np.asarray(times_s, np.float64)
    latencies_ms = np.asarray(latencies_ms, np.float64)
    ax.plot(times_s, latencies_ms, ".-", color="tab:blue", lw=1, ms=3, label="end-to-end (published → scene received)")
    if trigger_ms is not None and len(trigger_ms) == len(times_s):
        ax.plot(times_s, trigger_ms, ".-", color="tab:green", lw=1, ms=3,
                label="from the frame that completed its triple → scene received")
    if engine_ms is not None and len(engine_ms) == len(times_s):
        ax.plot(times_s, engine_ms, ".-", color="tab:orange", lw=1, ms=3, label="engine (networks + geometry)")
    if len(latencies_ms):
        p50, p95 = np.percentile(latencies_ms, [50, 95])
        ax.axhline(p50, color="gray", ls="--", lw=0.8, label=f"p50 {p50:.0f} ms")
        ax.axhline(p95, color="gray", ls=":", lw=0.8, label=f"p95 {p95:.0f} ms")
    ax.set_xlabel("time offered (s since the first frame)")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    return _finish(plt, fig, ax, title, path)
