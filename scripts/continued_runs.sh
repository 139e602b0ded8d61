#!/usr/bin/env bash
# docs/RESULTS.md's "do more updates change the scores?" as records (issue 24): the seed-0 DeMa and
# DT cells of mujoco-main on walker2d-medium and hopper-medium, trained again where their run
# directories are not on this machine (their records in results/ stay as they are), continued to
# 10,000 updates, and compared; one record per run in RESULTS/continued/. Resumable.
#
#   scripts/continued_runs.sh [RESULTS_DIR]
#
# Then, from any clone: dema continue --from-records results/continued \
#     --page docs/RESULTS.md --figure docs/RESULTS_figures/continued.png
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
DEMA=${DEMA:-.venv/bin/dema}
export OPENBLAS_NUM_THREADS=1
# The DeMa cells are the ones scripts/analysis_runs.sh trains (the same grid, seed, code and data):
# a finished copy of those is taken instead of training them again (about half an hour each)
mkdir -p runs/continued-source
for cell in walker2d-medium_dema_cpu-main_s0 hopper-medium_dema_cpu-main_s0; do
  if [ -f "runs/analyses/$cell/eval.json" ] && [ ! -e "runs/continued-source/$cell" ]; then
    rm -rf "runs/continued-source/$cell.partial"  # a copy interrupted last time
    cp -r "runs/analyses/$cell" "runs/continued-source/$cell.partial"
    mv "runs/continued-source/$cell.partial" "runs/continued-source/$cell"
  fi
done
# the 5,000-update runs, without records ('' = none): mujoco-main's own are in results/ already
"$DEMA" sweep mujoco-main --models dema dt --seeds 0 --datasets walker2d-medium hopper-medium \
  --executor local --workers 1 --runs-dir runs/continued-source --results-dir ''
"$DEMA" continue runs/continued-source \
  walker2d-medium_dt_cpu-main_s0 walker2d-medium_dema_cpu-main_s0 hopper-medium_dt_cpu-main_s0 \
  hopper-medium_dema_cpu-main_s0 --updates 10000 --into runs/continued --records "$RESULTS/continued"
