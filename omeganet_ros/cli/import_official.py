"""omeganet-import-official: the authors' published ΩNet TensorFlow weights → an omeganet_ros checkpoint.

::

    omeganet-import-official models/omeganet --out omeganet_official.pt [--size 640x192] [--tau 0.5]
                             [--tf-python .venv-tf/bin/python]

CKPT is a TF checkpoint prefix: ``CKPT.index`` and ``CKPT.data-*`` beside it (as in the authors'
zips). A complete ΩNet release gives DSNet + CamNet + OFNet; a DSNet release (``load_only_baseline``,
1024×320) gives DSNet + CamNet. Reading the files needs TensorFlow (``pip install
'omeganet_ros[official]'``) in this interpreter or in the one given with ``--tf-python``; the
written checkpoint never needs it. Prints a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..checkpoint import CheckpointError
from ..official_import import AUTHORS_TAU, import_official


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x192, got {text!r}") from exc
    return width, height


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="omeganet-import-official", description=__doc__.split("\n")[0])
    p.add_argument("ckpt", help="TF checkpoint prefix (CKPT.index + CKPT.data-* beside it)")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--size", type=_size, default=None,
                   help="network input WxH recorded in the file (default: 640x192 for ΩNet, 1024x320 for DSNet releases)")
    p.add_argument("--tau", type=float, default=AUTHORS_TAU, help="motion-mask τ recorded in the file (authors' default 0.5)")
    p.add_argument("--tf-python", default=None,
                   help="a Python interpreter with TensorFlow to read CKPT with (default: this one; env OMEGANET_TF_PYTHON)")
    args = p.parse_args(argv)
    if not 0.0 <= args.tau <= 1.0:
        p.error(f"--tau must be in [0, 1], got {args.tau}")
    try:
        path, report = import_official(args.ckpt, args.out, size=args.size, tau=args.tau, tf_python=args.tf_python)
    except CheckpointError as exc:
        print(f"omeganet-import-official: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(path), **report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
