#!/usr/bin/env bash
# Reproduce the packaged reference checkpoint omeganet_ros/models/omeganet_synth.pt end to end
# (see omeganet_ros/models/MODEL_CARD.md): stages 1–3 of the ΩNet protocol on the procedural
# synthetic world at 320×96, then an fp16 export in the package's checkpoint format.
#
#   scripts/train_reference.sh                 # from the repository root; scratch goes to runs/reference/
#   RUNS=/tmp/ref STEPS1=1000 scripts/train_reference.sh   # longer run elsewhere (not the shipped recipe)
#
# Environment: PYTHON (default .venv/bin/python), RUNS (scratch folder), THREADS (PyTorch CPU threads,
# 1 is fastest on busy cores), DEVICE (cpu | cuda | auto), STEPS1/STEPS2/STEPS3 (steps per stage; the
# defaults are the shipped recipe), MODEL (where the fp16 checkpoint is written).
# The trainer resumes exactly, so stopping a stage with Ctrl-C and continuing with --resume and the
# same --steps gives the same weights as an uninterrupted run (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs/reference}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-auto}
STEPS1=${STEPS1:-500}
STEPS2=${STEPS2:-100}
STEPS3=${STEPS3:-0}
MODEL=${MODEL:-omeganet_ros/models/omeganet_synth.pt}
TRAIN_DATA=synth:seed=1,frames=300
VAL_DATA=synth:seed=101,frames=40

train() { "$PYTHON" -m omeganet_ros.cli.train --threads "$THREADS" --device "$DEVICE" --no-progress "$@"; }

# Stage 1: DSNet (depth + semantics, proxy labels = the world's ground-truth trainIds) and CamNet.
train --config config/train_stage1.yaml --data "$TRAIN_DATA,labels=gt" --val "$VAL_DATA" \
      --out "$RUNS/stage1" --steps "$STEPS1"
last="$RUNS/stage1/last.pt"
# Stage 2: the teacher OFNet, starting from stage 1 (the checkpoint carries all three networks).
if [ "$STEPS2" -gt 0 ]; then
  train --config config/train_stage2.yaml --data "$TRAIN_DATA" --val "$VAL_DATA" \
        --init "$last" --out "$RUNS/stage2" --steps "$STEPS2"
  last="$RUNS/stage2/last.pt"
fi
# Stage 3: the self-distilled OFNet (teacher = stage 2's OFNet; rigid flow from stage 1's networks).
if [ "$STEPS3" -gt 0 ]; then
  train --config config/train_stage3.yaml --data "$TRAIN_DATA" --val "$VAL_DATA" \
        --init "$last" --out "$RUNS/stage3" --steps "$STEPS3"
  last="$RUNS/stage3/last.pt"
fi

# Export: the networks only (no optimiser state, no teacher), weights in fp16, provenance kept.
"$PYTHON" - "$last" "$MODEL" <<'EOF'
import hashlib
import sys
from pathlib import Path

from omeganet_ros.checkpoint import build_networks_from_checkpoint, load_checkpoint, save_checkpoint

source, target = Path(sys.argv[1]), Path(sys.argv[2])
ckpt = load_checkpoint(source)
networks = {name: net.half() for name, net in build_networks_from_checkpoint(ckpt, ["dsnet", "camnet", "ofnet"]).items()}
provenance = dict(ckpt.provenance)
provenance["export"] = {"source": str(source), "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                        "dtype": "float16", "recipe": "scripts/train_reference.sh"}
save_checkpoint(target, networks, input_size=ckpt.input_size, provenance=provenance, classes=ckpt.classes)
print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) from {source}, input_size {ckpt.input_size}")
EOF
