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

# Lane 1: the Atari table, then the MuJoCo table's DeMa and DT cells, then its DC and BC cells.
( sweep atari; sweep mujoco-main --models dema dt; sweep mujoco-main --models dc bc ) &
# Lane 2: the Atari ablations, the RNN-like cells, then the MuJoCo ablations and the official variants.
( sweep atari-ablations; sweep rnn-like; sweep token-layout; sweep residual; sweep position-embedding;
  sweep delayed-reward; sweep official; sweep sequence-length ) &
wait
