#!/usr/bin/env bash
# The Moreau et al. experiment on the synthetic world and the packaged reference checkpoint
# omeganet_ros/models/moreau_synth.pt (see omeganet_ros/models/MODEL_CARD_MOREAU.md):
#
#   1. streets: training seeds 1-3 (200 frames each), validation seed 50 (40 frames), at 256×96;
#   2. four runs with the same wall-clock budget each (MINUTES, default 4), one after the other, each
#      holding the shared CPU lock: ST (depth + pose) and MT (depth + pose + instances) with the
#      equal, DWA and uncertainty weightings;
#   3. the reference = the MT run with the best validation depth abs_rel (seed 50, never the test seeds
#      of benchmarks/moreau_st_vs_mt.py), exported with int8 kernels (STORAGE; see
#      omeganet_ros/quantized_weights.py and benchmarks/moreau_weight_storage.py for what that costs).
#
#   scripts/train_moreau_reference.sh                     # from the repository root; scratch in runs/moreau/
#   RUNS=/tmp/m MINUTES=2 scripts/train_moreau_reference.sh
#   benchmarks/moreau_st_vs_mt.py --runs runs/moreau       # the ST-vs-MT figures on unseen seeds
#
# Environment: PYTHON (default .venv/bin/python), RUNS, MINUTES, THREADS (default 2), DEVICE (cpu | cuda), MODEL (where the
# reference is written; empty: no export), STORAGE (its weights: int8 (default), int4, fp16 or fp32), LOCK (default
# /tmp/omeganet_cpu.lock; empty: no lock), PARALLEL (1: the four runs at once, e.g. on a GPU; each still gets
# MINUTES), WORKERS (data-loading processes per run; default 0: in the training process).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs/moreau}
MINUTES=${MINUTES:-4}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
MODEL=${MODEL-omeganet_ros/models/moreau_synth.pt}
LOCK=${LOCK-/tmp/omeganet_cpu.lock}
STORAGE=${STORAGE:-int8}
PARALLEL=${PARALLEL:-0}
WORKERS=${WORKERS:-0}
SIZE=256x96
mkdir -p "$RUNS/data"

locked() { if [ -n "$LOCK" ]; then flock "$LOCK" "$@"; else "$@"; fi; }
street() {  # seed frames
  [ -f "$RUNS/data/seed$1/meta.json" ] || locked "$PYTHON" -m omeganet_ros.cli.synth \
      --out "$RUNS/data/seed$1" --seed "$1" --frames "$2" --size "$SIZE" --quiet --overwrite
}
if [ "$PARALLEL" = 1 ]; then
  street 1 200 & street 2 200 & street 3 200 & street 50 40 & wait
else
  for seed in 1 2 3; do street "$seed" 200; done
  street 50 40
fi
TRAIN=(--data "sequence:$RUNS/data/seed1" --data "sequence:$RUNS/data/seed2" --data "sequence:$RUNS/data/seed3")
VAL=(--val "sequence:$RUNS/data/seed50")

run() {  # name config weighting
  local out="$RUNS/$1"
  if [ -f "$out/result.json" ]; then echo "$1: done before ($out/result.json)"; return; fi
  rm -rf "$out"
  local config
  config=$(mktemp --suffix=.yaml)
  sed -e "s/^  name: equal .*/  name: $3/" -e "s/^size: .*/size: [${SIZE/x/, }]/" \
      -e "s/^  augment: true/  augment: true\n  num_workers: $WORKERS/" "$2" > "$config"
  echo "$1: training for $MINUTES min (config $2, weighting $3)"
  locked "$PYTHON" -m omeganet_ros.cli.train --config "$config" "${TRAIN[@]}" "${VAL[@]}" --out "$out" \
      --threads "$THREADS" --device "$DEVICE" --max-minutes "$MINUTES" --no-progress > "$out.log" 2>&1 \
      || { echo "$1 failed: $out.log" >&2; rm -f "$config"; exit 1; }
  rm -f "$config"
  sed -n '/^{/,$p' "$out.log" > "$out/result.json"
}
if [ "$PARALLEL" = 1 ]; then
  run st config/train_moreau_st.yaml equal & run mt_equal config/train_moreau.yaml equal &
  run mt_dwa config/train_moreau.yaml dwa & run mt_uncertainty config/train_moreau.yaml uncertainty &
  wait
  for name in st mt_equal mt_dwa mt_uncertainty; do
    [ -f "$RUNS/$name/result.json" ] || { echo "$name failed: $RUNS/$name.log" >&2; exit 1; }
  done
else
  run st config/train_moreau_st.yaml equal
  run mt_equal config/train_moreau.yaml equal
  run mt_dwa config/train_moreau.yaml dwa
  run mt_uncertainty config/train_moreau.yaml uncertainty
fi

[ -n "$MODEL" ] || exit 0
# Export the best MT run (validation abs_rel): networks only, STORAGE weights, provenance kept.
"$PYTHON" - "$RUNS" "$MODEL" "$STORAGE" <<'PY'
import hashlib
import json
import sys
from pathlib import Path

from omeganet_ros.checkpoint import build_networks_from_checkpoint, load_checkpoint, save_checkpoint

runs, target, storage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if storage not in ("fp32", "fp16", "int8", "int4"):
    raise SystemExit(f"STORAGE must be fp32, fp16, int8 or int4, got {storage!r}")
scores = {name: json.loads((runs / name / "result.json").read_text())["metrics"]["depth_abs_rel"]
          for name in ("mt_equal", "mt_dwa", "mt_uncertainty")}
best = min(scores, key=scores.get)
source = runs / best / "last.pt"
ckpt = load_checkpoint(source)
networks = build_networks_from_checkpoint(ckpt)
if storage == "fp16":
    networks = {name: net.half() for name, net in networks.items()}
provenance = dict(ckpt.provenance)
provenance["export"] = {"source": str(source), "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                        "weight_storage": storage, "recipe": "scripts/train_moreau_reference.sh",
                        "selected_by": {"validation_depth_abs_rel": scores, "best": best}}
save_checkpoint(target, networks, input_size=ckpt.input_size, provenance=provenance, classes=[],
                weight_storage=storage if storage in ("int8", "int4") else None)
print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) from {source} (validation abs_rel {scores})")
PY
