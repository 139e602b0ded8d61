#!/usr/bin/env bash
# docs/RESULTS.md's Pong diagnostics as records (issue 24): is a Pong score at random play a target
# out of the data's range, or a policy that never learned the game? The seed-0 DeMa and DT cells of
# the `atari` grid, trained again where their run directories are not on this machine (their records
# in results/ stay as they are), are scored at three return targets; each evaluation is kept as
# RESULTS/diagnostics/pong/<run>.json. Resumable: a model whose record exists is skipped.
#
#   scripts/pong_diagnostics.sh [RESULTS_DIR]
#
# Then, from any clone: dema report results --pong-diagnostics   (the table, from the records alone)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results}
DEMA=${DEMA:-.venv/bin/dema}
OUT="$RESULTS/diagnostics/pong"

# the cells' run directories, without records ('' = none): the grid's own are in results/ already
"$DEMA" sweep atari --models dema dt --seeds 0 --datasets atari/Pong --executor local --workers 1 \
  --runs-dir runs/pong-source --results-dir ''
mkdir -p "$OUT"
for model in dema dt; do
  name="Pong_${model}_cpu-atari_s0"
  [ -f "$OUT/$name.json" ] && continue
  copy="runs/pong-diagnostics/$name"  # a copy: the cell's own eval.json stays the grid's
  if [ ! -e "$copy" ]; then
    mkdir -p runs/pong-diagnostics
    rm -rf "$copy.partial"  # a copy interrupted last time
    cp -r "runs/pong-source/$name" "$copy.partial"
    mv "$copy.partial" "$copy"
  fi
  "$DEMA" eval "$copy" --checkpoint final --episodes 5 --targets 20 0 -10 --max-episode-steps 10000
  cp "$copy/eval.json" "$OUT/$name.json"
done
"$DEMA" report "$RESULTS" --pong-diagnostics
