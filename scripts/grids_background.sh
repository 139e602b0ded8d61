#!/usr/bin/env bash
# The reproduction's grids in the background on a 2-core machine: two lanes, one cell (one torch
# thread) each, every grid's records into ONE results folder. Re-running it resumes: `dema sweep`
# skips recorded cells and resumes interrupted ones from their checkpoints.
#
#   scripts/grids_background.sh [RESULTS_DIR]      # run from a clone with `pip install -e ".[sweep,atari]"`
#
# Run it from a clone other than the one you edit (a sweep imports the code of its clone), with the
# datasets where dema looks for them (DEMA_DATA_PATH, ./datasets). Logs: runs/<grid>.log.
# Stop it with `kill` on the lanes' sweeps (SIGTERM: their workers stop, checkpoints stay).
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
export OPENBLAS_NUM_THREADS=1
mkdir -p runs

sweep() {  # sweep GRID [dema sweep options...]: one worker, records into $RESULTS
  local grid=$1
  shift
  nice -n 5 .venv/bin/dema sweep "$grid" --executor local --workers 1 --runs-dir "runs/$grid" \
    --results-dir "$RESULTS" "$@" >> "runs/$grid.log" 2>&1
  echo "$(date -u +%FT%TZ) $grid: exit $?" >> runs/lanes.log
}

# The tables' models are split between the lanes (DT in one, DeMa in the other), so the two lanes
# never reach for the same cell and DeMa's and DT's cells train side by side, under the same load.
# The order follows issue 10: the MuJoCo table's DeMa and DT cells, then the ablations on the three
# medium datasets, then the table's DC and BC columns and the longer studies. The ablations run
# breadth first, one seed of every ablation before the next seed of any: seed 0 on three datasets
# already gives each claim the report's minimum of 3 pairs, so every claim gets a first verdict
# before any gets its third seed.
ablations() {  # ablations LANE SEED: one seed of the lane's share of the ablation grids
  if [ "$1" = 1 ]; then
    sweep token-layout --seeds "$2"; sweep position-embedding --seeds "$2"; sweep delayed-reward --seeds "$2" --models dt
  else
    sweep official --seeds "$2"; sweep residual --seeds "$2"; sweep delayed-reward --seeds "$2" --models dema
  fi
}
# Lane 1: the Atari table's seeds 0 and 1, DT's seed 2, the MuJoCo table's DT cells, then per seed the
# learning-rate control (DT at 1e-3 on the six datasets where DeMa trains at 1e-3: the MuJoCo verdict
# turns on it, docs/RESULTS.md), token layout, position embedding and delayed reward (DT), then the
# table's DC cells and the sequence-length study.
( sweep atari --seeds 0 1; sweep atari --seeds 2 --models dt; sweep mujoco-main --models dt;
  for seed in 0 1 2; do sweep lr-control --seeds $seed; ablations 1 $seed; done
  sweep mujoco-main --models dc; sweep sequence-length ) &
# Lane 2: the Atari ablations, DeMa's Atari seed 2, the MuJoCo table's DeMa cells, the
# official-initialisation variants, residual structure, delayed reward (DeMa), Transformer-like vs
# RNN-like (last of the ablations: a cell trains on whole trajectories and took 91 minutes), then the
# table's BC cells.
# (maze2d is not queued: its datasets are collected first, scripts/collect_maze.sh.)
( sweep atari-ablations; sweep atari --seeds 2 --models dema; sweep mujoco-main --models dema;
  for seed in 0 1 2; do ablations 2 $seed; done; sweep rnn-like; sweep mujoco-main --models bc ) &
wait
