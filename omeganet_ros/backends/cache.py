"""The export cache of the inference backends: one folder per (backend, precision, input size, network weights).

Layout (root: ``$OMEGANET_CACHE_DIR``, else ``$XDG_CACHE_HOME/omeganet_ros``, else ``~/.cache/omeganet_ros``)::

    graphs/<backend>-<precision>-<W>x<H>-<weights hash[:16]>/
        manifest.json     what the files were made from, and their SHA-256
        <graph files>     the backend's own (ONNX files, OpenVINO IR, ...)

A folder is used only when its manifest matches what would be exported now — the full weights hash,
the package version, the source of the networks and of the export code, the ONNX opset, the torch and
backend versions — and every file listed has its recorded SHA-256. Otherwise it is *stale* or
*corrupt*: it is exported again (the reason is logged and kept in :attr:`CacheEntry.reason`). Exports
are written to a temporary folder and renamed into place under a lock file, so concurrent processes
neither read a half-written folder nor export twice.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CACHE_FORMAT = "omeganet_ros.graph_cache/1"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Source files whose change changes the exported graphs.
_CODE_FILES = ("geometry.py", "nets", "backends/graphs.py")


def cache_root() -> Path:
    """The cache's root folder (see the module docstring)."""
    explicit = os.environ.get("OMEGANET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "omeganet_ros"


def weights_hash(networks: dict[str, nn.Module]) -> str:
    """SHA-256 of the networks' classes, architecture records (``config()``: arguments such as CamNet's
    ``reversal_symmetric`` change the graph, not the weights), parameter and buffer names, shapes, dtypes and
    values (hex)."""
    digest = hashlib.sha256()
    for name in sorted(networks):
        net = networks[name]
        digest.update(f"{name}:{type(net).__module__}.{type(net).__qualname__}\n".encode())
        if hasattr(net, "config"):
            digest.update(json.dumps(net.config(), sort_keys=True).encode())
        for key, tensor in sorted(net.state_dict().items()):
            t = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{key}:{tuple(t.shape)}:{t.dtype}\n".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def code_hash() -> str:
    """SHA-256 of the sources that shape the exported graphs (the networks, geometry, the graph definitions)."""
    digest = hashlib.sha256()
    for entry in _CODE_FILES:
        path = _PACKAGE_ROOT / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            digest.update(str(f.relative_to(_PACKAGE_ROOT)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class CacheEntry:
    """A cache folder ready to load: its path and manifest; ``exported`` when made now, and why."""

    path: Path
    manifest: dict
    exported: bool
    reason: str = ""
    files: dict = field(default_factory=dict)  # graph name → absolute path of its main file


def expected_fields(backend: str, backend_version: str, precision: str, size: tuple[int, int],
                    weights: str, opset: int) -> dict:
    """The manifest fields a cache folder must have to be used now."""
    from .. import __version__

    return {
        "format": CACHE_FORMAT,
        "backend": backend,
        "backend_version": backend_version,
        "precision": precision,
        "size": [int(size[0]), int(size[1])],
        "weights_sha256": weights,
        "package_version": __version__,
        "code_sha256": code_hash(),
        "opset": int(opset),
        "torch": torch.__version__,
    }


def check_entry(path: Path, expected: dict) -> tuple[dict | None, str]:
    """(manifest, "") when the folder at ``path`` is valid for ``expected``, else (None, why not)."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return None, "no cache yet" if not path.exists() else "no manifest"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"corrupt manifest ({exc})"
    if not isinstance(manifest, dict):
        return None, "corrupt manifest (not an object)"
    for key, value in expected.items():
        if manifest.get(key) != value:
            return None, f"stale: {key} {manifest.get(key)!r} != {value!r}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None, "corrupt manifest (no files)"
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            return None, f"corrupt: {name} is missing"
        if file_sha256(f) != digest:
            return None, f"corrupt: {name} does not match its SHA-256"
    return manifest, ""


def entry_name(backend: str, precision: str, size: tuple[int, int], weights: str) -> str:
    return f"{backend}-{precision}-{size[0]}x{size[1]}-{weights[:16]}"


def entry_folder(expected: dict, root: Path | None = None) -> Path:
    """The cache folder of ``expected`` (see :func:`expected_fields`) under ``root`` (None: :func:`cache_root`)."""
    root = Path(root) if root is not None else cache_root()
    return root / "graphs" / entry_name(expected["backend"], expected["precision"], expected["size"],
                                        expected["weights_sha256"])


def open_entry(expected: dict, export: Callable[[Path], dict], root: Path | None = None,
               force: bool = False, reason: str = "") -> CacheEntry:
    """The valid cache folder for ``expected`` (see :func:`expected_fields`), exported now when needed.

    ``export(folder)`` writes the graph files into an empty ``folder`` and returns extra manifest fields,
    including ``"graphs"``: {graph name: file name}. ``force`` re-exports even a valid folder (a file that
    passed its checksum but failed to load), with ``reason`` logged.
    """
    folder = entry_folder(expected, root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting the same folder
        manifest, why = (None, reason or "forced") if force else check_entry(folder, expected)
        if manifest is not None:
            return _entry(folder, manifest, exported=False)
        log.info("omeganet_ros: exporting %s graphs to %s (%s)", expected["backend"], folder, why)
        tmp = folder.parent / f"{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            started = time.perf_counter()
            extra = export(tmp)
            files = {p.relative_to(tmp).as_posix(): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            manifest = {**expected, **extra, "files": files, "export_s": round(time.perf_counter() - started, 1),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return _entry(folder, manifest, exported=True, reason=why)


def _entry(folder: Path, manifest: dict, exported: bool, reason: str = "") -> CacheEntry:
    graphs = manifest.get("graphs", {})
    return CacheEntry(folder, manifest, exported, reason, {name: folder / f for name, f in graphs.items()})
