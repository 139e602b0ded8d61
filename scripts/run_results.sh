#!/usr/bin/env bash
# The real runs behind docs/RESULTS.md: DeMa and DT on hopper-, halfcheetah- and walker2d-medium
# (datasets collected by `dema collect` into datasets/), one named protocol, in two lanes
# (DeMa lane, DT lane) that run side by side with one torch thread each, under nice.
#
#   scripts/run_results.sh            # start, or continue after an interruption
#   PROTOCOL=cpu-short SEEDS="0 1 2" scripts/run_results.sh
#
# Resumable: a run with eval.json is done and skipped; a run with train_state.pt is resumed
# exactly (dema train --resume); anything else starts over. Logs: runs/logs/<run>.log.
# Then: .venv/bin/python scripts/results_table.py > docs/RESULTS.md
set -u
cd "$(dirname "$0")/.."
DEMA=${DEMA:-.venv/bin/dema}
PROTOCOL=${PROTOCOL:-cpu-1k}
SEEDS=${SEEDS:-0}
DATASETS=${DATASETS:-"hopper-medium halfcheetah-medium walker2d-medium"}
mkdir -p runs/logs

one_run() {  # model dataset seed
    local model=$1 dataset=$2 seed=$3
    local name="${dataset}_${model}_${PROTOCOL}_s${seed}"
    local dir="runs/$name" log="runs/logs/$name.log"
    if [ -f "$dir/eval.json" ]; then echo "$name: done"; return 0; fi
    until ls datasets/"$dataset"-v*.hdf5 >/dev/null 2>&1; do sleep 30; done  # still being collected
    echo "$name: $(date -u +%H:%M:%S) start" | tee -a "$log"
    if [ -f "$dir/train_state.pt" ]; then
        nice -n 10 "$DEMA" train --resume "$dir" --progress False >>"$log" 2>&1
    else
        nice -n 10 "$DEMA" train --model "$model" --dataset "$dataset" --protocol "$PROTOCOL" --seed "$seed" \
            --threads 1 --progress False --overwrite True >>"$log" 2>&1
    fi
    echo "$name: $(date -u +%H:%M:%S) exit $?" | tee -a "$log"
}

lane() {  # model
    for seed in $SEEDS; do for dataset in $DATASETS; do one_run "$1" "$dataset" "$seed"; done; done
}

lane dema &
lane dt &
wait
