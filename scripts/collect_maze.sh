#!/usr/bin/env bash
# Collect maze2d umaze / medium / large (PointMaze, waypoint controller + noise, D4RL's sizes
# 1M / 2M / 4M) into datasets/, one at a time, skipping files that already exist.
# Needs gymnasium-robotics: pip install -e '.[maze]'.
# Usage: nice -n 10 scripts/collect_maze.sh [extra dema collect options]
set -euo pipefail
cd "$(dirname "$0")/.."
DEMA=${DEMA:-.venv/bin/dema}
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}
mkdir -p datasets
for maze in umaze medium large; do
  out="datasets/maze2d-${maze}-v3.hdf5"
  if [ -e "$out" ]; then echo "skip $out (exists)"; continue; fi
  "$DEMA" collect "maze2d-${maze}" controller --seed 0 --num-envs 16 --out "$out" "$@"
done
