#!/usr/bin/env bash
# Collect the nine D4RL-style MuJoCo datasets into datasets/ (ignored), one at a time, at D4RL's
# default sizes, skipping files that already exist (so a re-run resumes after an interruption:
# a file only appears, atomically, when its collection finished). Medium first: the trainer needs them.
# Usage: nice -n 10 scripts/collect_mujoco.sh [extra dema collect options]
set -euo pipefail
cd "$(dirname "$0")/.."
DEMA=${DEMA:-.venv/bin/dema}
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}  # a progress line every 30 s in a log file
mkdir -p datasets
for recipe in medium medium-replay medium-expert; do
  for env in hopper halfcheetah walker2d; do
    out="datasets/${env}-${recipe}-v5.hdf5"
    if [ -e "$out" ]; then echo "skip $out (exists)"; continue; fi
    "$DEMA" collect "$env" "$recipe" --seed 0 --num-envs 16 --out "$out" "$@"
  done
done
