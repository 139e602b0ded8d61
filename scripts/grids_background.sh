#!/usr/bin/env bash
# The reproduction's grids in the background on a 2-core machine: two lanes, one cell (one torch
# thread) each, every grid's records into ONE results folder. Re-running it resumes: `dema sweep`
# skips recorded cells and resumes interrupted ones from their checkpoints.
#
#   scripts/grids_background.sh [RESULTS_DIR]      # from a clone with `pip install -e ".[sweep,atari,maze]"`
#
# Run it from a clone other than the one you edit (a sweep imports the code of its clone), with the
# datasets where dema looks for them (DEMA_DATA_PATH, ./datasets). Logs: runs/<grid>.log, and one
# line per job in runs/lanes.log. Stop it with `kill` on the lanes' sweeps (SIGTERM: their workers
# stop, checkpoints stay) and on this script.
#
# The order is issue 24's: each claim reaches 3 seeds on its datasets before the next claim's cells.
# The jobs are one (grid, seed, dataset[, model/value]) each, in one queue that both lanes take from,
# so the two cores stay busy to the end and a claim's cells run side by side under the same load.
# A job whose dataset is not collected yet goes back to the queue and the lane takes the next one
# (collect in the background meanwhile: scripts/collect_mujoco.sh, scripts/collect_maze.sh,
# docs/DATASETS.md); a lane gives such jobs up 3 hours after it started.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
export OPENBLAS_NUM_THREADS=1
mkdir -p runs

MEDIUM="hopper-medium halfcheetah-medium walker2d-medium"
JOBS=()
add() {  # add GRID "SEEDS" "DATASETS" [sweep options...]: one job per seed and dataset, seed-major
  local grid=$1 seeds=$2 datasets=$3 seed dataset
  shift 3
  for seed in $seeds; do
    for dataset in $datasets; do JOBS+=("$grid --seeds $seed --datasets $dataset $*"); done
  done
}
# 1. DT at DeMa's learning rate: the MuJoCo verdict at equal learning rates turns on it
add lr-control "0 1 2" "hopper-medium-expert halfcheetah-medium-expert walker2d-medium-expert halfcheetah-medium halfcheetah-medium-replay walker2d-medium-replay"
# 2-4. the MuJoCo ablations on the medium datasets
add token-layout "0 1 2" "$MEDIUM"
add residual "0 1 2" "$MEDIUM"
add position-embedding "0 1 2" "$MEDIUM"
# 5. delayed rewards, DeMa and DT, a seed of both before the next seed (pairs form as cells land)
for seed in 0 1 2; do
  add delayed-reward "$seed" "$MEDIUM" --models dema
  add delayed-reward "$seed" "$MEDIUM" --models dt
done
# 6. context length: K 8 and 30 against mujoco-main's K 20, a seed of both before the next (K 30
#    first: the claim pairs the best K <= 20 with K 30, so each K 30 cell adds a pair at once)
for seed in 0 1 2; do
  add sequence-length "$seed" "$MEDIUM" --values model.context_len=30
  add sequence-length "$seed" "$MEDIUM" --values model.context_len=8
done
# 7. Breakout seeds 3 and 4, so that the Atari ablations reach 5 pairs
add atari "3 4" "atari/Breakout" --models dema dt
add atari-ablations "3 4" "atari/Breakout"
# 8. Transformer-like against RNN-like DeMa (recorded cells: about 2.5 h on hopper-medium, 3-4.5 h on the others)
add rnn-like "0 1 2" "$MEDIUM"
# 9. the hidden-attention analyses of the medium datasets' DeMa cells, as records (issue 24: seeds
#    0-2, so the attention claims rest on 3 seeds; a cell is trained again where its run directory is
#    not on this machine). Ahead of maze2d and the official codes' seeds: these decide two of the
#    paper's claims in docs/REPRODUCTION.md, while maze2d is an extension and `official` a fidelity check.
for seed in 0 1 2; do for dataset in $MEDIUM; do JOBS+=("analysis $dataset $seed"); done; done
#    and RNN-like DeMa's decay over whole episodes, on the rnn-like cells' own run directories
#    (evaluation only: minutes a cell; hopper-medium seed 0's directory is not on this machine, so
#    that one, which would train the cell again, waits until the end of the queue)
for seed in 0 1 2; do for dataset in $MEDIUM; do
  [ "$seed/$dataset" = 0/hopper-medium ] || JOBS+=("analysis $dataset $seed dema-rnn")
done; done
# 10. maze2d (collect first: scripts/collect_maze.sh)
add maze2d "0 1 2" "maze2d-umaze maze2d-medium maze2d-large"
# 11. the official codes' choices, seeds 1 and 2
add official "1 2" "$MEDIUM"
# 12. docs/RESULTS.md's runs continued from 5,000 to 10,000 updates, as records
JOBS+=("continued")
# 13. docs/RESULTS.md's Pong diagnostics (the final weights at three return targets), as records
JOBS+=("pong-diagnostics")
# then, as compute allows: position embedding on medium-replay, K 4 and 12, the table's DC and BC
add position-embedding "0 1 2" "hopper-medium-replay halfcheetah-medium-replay walker2d-medium-replay"
add sequence-length "0 1 2" "$MEDIUM" --values model.context_len=4 model.context_len=12
add mujoco-main "0 1 2" "$MEDIUM hopper-medium-replay halfcheetah-medium-replay walker2d-medium-replay hopper-medium-expert halfcheetah-medium-expert walker2d-medium-expert" --models dc bc
JOBS+=("analysis hopper-medium 0 dema-rnn")

: > runs/lanes.taken
next_job() {  # next_job SKIP...: the index of the first job no lane has taken, less the SKIPped ones
  local i       # (under a lock; it is marked taken); fails when none is left
  exec 9> runs/lanes.lock
  flock 9
  for i in "${!JOBS[@]}"; do
    if ! grep -qx "$i" runs/lanes.taken && [[ " $* " != *" $i "* ]]; then
      echo "$i" >> runs/lanes.taken
      flock -u 9
      echo "$i"
      return 0
    fi
  done
  flock -u 9
  return 1
}

release_job() {  # release_job I: give a job back to the queue (its dataset is not collected yet)
  exec 9> runs/lanes.lock
  flock 9
  grep -vx "$1" runs/lanes.taken > runs/lanes.taken.new
  mv runs/lanes.taken.new runs/lanes.taken
  flock -u 9
}

run_job() {  # run_job GRID OPTIONS...: one worker; exit 2 with a "no dataset" line = not ready yet
  local grid=$1 status
  shift
  if [ "$grid" = analysis ]; then  # "analysis DATASET SEED [MODEL]": scripts/analysis_runs.sh
    nice -n 5 scripts/analysis_runs.sh "$1" "$2" "$RESULTS" "${3:-dema}" >> runs/analysis.log 2>&1
  elif [ "$grid" = continued ]; then
    nice -n 5 scripts/continued_runs.sh "$RESULTS" >> runs/continued.log 2>&1
  elif [ "$grid" = pong-diagnostics ]; then
    nice -n 5 scripts/pong_diagnostics.sh "$RESULTS" >> runs/pong-diagnostics.log 2>&1
  else
    nice -n 5 .venv/bin/dema sweep "$grid" --executor local --workers 1 --runs-dir "runs/$grid" \
      --results-dir "$RESULTS" "$@" >> "runs/$grid.log" 2>&1
  fi
  status=$?
  if [ "$status" = 2 ] && tail -n 1 "runs/$grid.log" | grep -q "no dataset of that id"; then
    return 3
  fi
  echo "$(date -u +%FT%TZ) lane $LANE: $grid $*: exit $status" >> runs/lanes.log
}

lane() {  # take jobs in order; a job whose data is missing goes back to the queue and the lane
  LANE=$1  # takes the next one; when only such jobs are left, it waits a minute and tries again
  local i waiting=() since
  since=$(date +%s)
  while :; do
    if i=$(next_job "${waiting[@]}"); then
      # shellcheck disable=SC2086  # a job is a grid name and its options, split on spaces
      if run_job ${JOBS[$i]}; then waiting=(); continue; fi  # after a job, earlier ones first again
      release_job "$i"
      waiting+=("$i")
    elif [ ${#waiting[@]} -gt 0 ] && [ $(($(date +%s) - since)) -lt 10800 ]; then
      sleep 60
      waiting=()
    else
      echo "$(date -u +%FT%TZ) lane $LANE: done (jobs still without data after 3 hours are left)" >> runs/lanes.log
      return
    fi
  done
}

lane 1 &
sleep 5  # the first lane's first sweep claims its grid's runs folder before the second starts
lane 2 &
wait
