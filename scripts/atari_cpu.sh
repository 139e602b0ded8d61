#!/usr/bin/env bash
# The Atari runs of docs/RESULTS.md under protocol cpu-atari, one after another (one core each):
#   scripts/atari_cpu.sh                       # Pong and Breakout, dema and dt, seed 0
#   GAMES="Pong" MODELS="dema-bl3d dema-post" SEEDS="0 1 2" scripts/atari_cpu.sh
# Data: datasets/atari/<Game> (dema collect pong scripted --steps 100000 --out datasets/atari).
# A run whose eval.json exists is skipped; an interrupted one is resumed.
set -uo pipefail
cd "$(dirname "$0")/.."
GAMES=${GAMES:-"Pong Breakout"}
MODELS=${MODELS:-"dema dt"}
SEEDS=${SEEDS:-"0"}
RUNS=${RUNS:-runs/atari}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for seed in $SEEDS; do
  for game in $GAMES; do
    for model in $MODELS; do
      run="$RUNS/${game}_${model}_cpu-atari_s${seed}"
      if [ -f "$run/eval.json" ]; then echo "done: $run"; continue; fi
      if [ -f "$run/train_state.pt" ]; then
        nice -n 10 .venv/bin/dema train --resume "$run" --threads 1 --progress False
      else
        nice -n 10 .venv/bin/dema train --model "$model" --dataset "datasets/atari/$game" --protocol cpu-atari \
          --seed "$seed" --threads 1 --runs-dir "$RUNS" --overwrite True --progress False
      fi
      echo "exit $? for $run"
    done
  done
done
