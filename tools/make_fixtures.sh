#!/usr/bin/env bash
# Regenerates the parity fixtures in tests/fixtures/ with mmsegmentation's own code.
#
# mmseg lives in a virtual environment of its own (.venv-mmseg), never in the
# project's: it pins mmcv < 2.2 and pulls OpenCV, matplotlib and SciPy.
# Usage: bash tools/make_fixtures.sh            (tiny fixtures, committed)
#        bash tools/make_fixtures.sh --full DIR  (full-size R50 at 256x512, not committed)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MMSEG_VENV:-.venv-mmseg}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q torch==2.13.0 mmengine==0.10.7 mmcv-lite==2.1.0 \
    mmsegmentation==1.2.2 ftfy regex opencv-python==5.1.0.95  # = .ci/constraints.txt
fi
tool=(env OMP_NUM_THREADS=1 "$venv/bin/python" tools/mmseg_reference.py)
tiny=(--stem-channels 8 --base-channels 4 --head-channels 16 --pam-channels 4 --aux-channels 8)

if [ "${1:-}" = "--full" ]; then
  "${tool[@]}" --seed 7 --out "${2:?an output folder}"
  exit 0
fi

out=tests/fixtures
# R50, Cityscapes classes, an input whose sides are multiples of 8.
"${tool[@]}" "${tiny[@]}" --seed 0 --height 64 --width 96 --out "$out/danet_r50_tiny"
# R101 on an odd size (57x75 gives 8x10 features), 7 classes.
# Half the tiny base width keeps the 23-block layer3 well under 1 MB; the legacy
# (pre-zip) torch format is the one the 2020 checkpoints may use.
"${tool[@]}" --stem-channels 8 --base-channels 2 --head-channels 16 --pam-channels 4 --aux-channels 8 \
  --depth 101 --num-classes 7 --seed 1 --legacy-serialization --height 57 --width 75 \
  --out "$out/danet_r101_tiny_odd"
# align_corners=True on an 8k+1 input, as the 769x769 configs, batch of two, 5 classes.
"${tool[@]}" "${tiny[@]}" --num-classes 5 --align-corners --batch 2 --seed 2 --height 65 --width 97 \
  --out "$out/danet_r50_tiny_align_corners"

# One training step (loss terms, SGD update, BN running statistics) on an odd size with
# ~10 % ignored labels; the same step with avg_non_ignore=True for its loss terms only.
train=(env OMP_NUM_THREADS=1 "$venv/bin/python" tools/mmseg_training_reference.py "${tiny[@]}"
  --num-classes 7 --seed 3 --height 57 --width 75 --batch 2)
"${train[@]}" --out "$out/danet_r50_tiny_train"
scratch=$(mktemp -d)
"${train[@]}" --avg-non-ignore --out "$scratch"
cp "$scratch/reference.npz" "$out/danet_r50_tiny_train/reference_avg_non_ignore.npz"
rm -rf "$scratch"
# mmseg's training augmentation (each transform with recorded random draws) and its test-time
# inference and metric (slide windows, multi-scale + flip, IoUMetric).
env OMP_NUM_THREADS=1 "$venv/bin/python" tools/mmseg_augmentation_reference.py --out "$out/augmentation"
env OMP_NUM_THREADS=1 "$venv/bin/python" tools/mmseg_inference_reference.py --out "$out/evaluation"
# mmseg's own float64 and autocast (bfloat16, float16) logits: the mixed-precision yardstick.
env OMP_NUM_THREADS=1 "$venv/bin/python" tools/mmseg_precision_reference.py

ls -la "$out"/*
