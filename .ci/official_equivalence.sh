#!/usr/bin/env bash
# Issue 12's proof, run by .ci/run after `make test`: the authors' ΩNet TensorFlow graph and ours give the
# same outputs for the same (random) weights on three real frames.
#
#   1. .venv-tf: created with the pinned recipe of ../shared/ENVIRONMENT.md when missing (TensorFlow is
#      never installed into .venv: the package does not need it);
#   2. tools/official_reference.py (in .venv-tf): the authors' graph at 640×192 with random weights →
#      OUT/omeganet.{index,data-*} (+ a load_only_baseline checkpoint) and OUT/reference.npz;
#   3. omeganet-import-official (in .venv, reading through .venv-tf) → OUT/omeganet.pt, OUT/omeganet_baseline.pt;
#   4. pytest test/test_official_equivalence.py with OMEGANET_OFFICIAL_REFERENCE=OUT.
#
# OUT defaults to build/official_equivalence; SHARED to ../shared. Without the authors' code or the
# frames there it says so and exits 0 (the test itself skips with the same reason).
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED="${SHARED:-../shared}"
OUT="${OUT:-build/official_equivalence}"
OFFICIAL="$SHARED/reference/omeganet-official"
FRAMES="$SHARED/data/kitti_raw_tiny/2011_09_26/2011_09_26_drive_0023_sync/image_02/data"
if [ ! -d "$OFFICIAL" ] || [ ! -d "$FRAMES" ]; then
  echo "official_equivalence: $OFFICIAL or $FRAMES not found: skipped (dev/CI machines only)"
  exit 0
fi

start=$(date +%s)
TF_PY=.venv-tf/bin/python
if ! "$TF_PY" -c "import tensorflow, tf_slim, tf_keras" >/dev/null 2>&1; then
  echo "official_equivalence: creating .venv-tf (tensorflow-cpu 2.15.1, tf-slim 1.1.0, tf-keras 2.15.1, numpy<2)"
  python3 -m venv .venv-tf
  "$TF_PY" -m pip install -q --disable-pip-version-check "tensorflow-cpu==2.15.1" "tf-slim==1.1.0" \
    "tf-keras==2.15.1" "numpy<2" "opencv-python-headless<4.11" matplotlib
fi
venv_done=$(date +%s)

mkdir -p "$OUT"
"$TF_PY" tools/official_reference.py --official "$OFFICIAL" --out "$OUT" --baseline \
  --frames "$FRAMES/0000000001.png" "$FRAMES/0000000002.png" "$FRAMES/0000000003.png" >"$OUT/reference.log" 2>&1 \
  || { tail -n 30 "$OUT/reference.log"; exit 1; }
reference_done=$(date +%s)
.venv/bin/omeganet-import-official "$OUT/omeganet" --out "$OUT/omeganet.pt" --tf-python "$TF_PY"
.venv/bin/omeganet-import-official "$OUT/omeganet_baseline" --out "$OUT/omeganet_baseline.pt" \
  --tf-python "$TF_PY"

OMEGANET_OFFICIAL_REFERENCE="$OUT" .venv/bin/python -m pytest test/test_official_equivalence.py -ra -p no:cacheprovider
end=$(date +%s)
echo "official_equivalence: $((end - start)) s (TensorFlow venv $((venv_done - start)) s, reference graph" \
     "$((reference_done - venv_done)) s, import + test $((end - reference_done)) s)"
