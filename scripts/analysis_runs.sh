#!/usr/bin/env bash
# The hidden-attention analyses of one DeMa cell, as records anyone can regenerate the docs from
# (issue 24): train the cell again where its run directory is not on this machine (its record in
# results/ stays as it is), then analyse its final weights and copy the JSON into
# RESULTS/analyses/<cell>/. Resumable: a finished step is skipped, an interrupted training resumes.
#
#   scripts/analysis_runs.sh DATASET SEED [RESULTS_DIR] [MODEL]   # e.g. hopper-medium 1 results
#
# MODEL dema (the default): a mujoco-main cell; `dema surgery` and `dema decay` in the window and
# episode views. MODEL dema-rnn: an rnn-like cell (its run directory is the grid's own,
# runs/rnn-like/<cell>, where the lanes train it); `dema decay` in the episode view only, RNN-like
# DeMa's own (`dema surgery` refuses RNN-like runs).
#
# Then, from any clone: dema analysis tables RESULTS_DIR/analyses/<cell>   (docs/ANALYSES.md's tables)
#
# RESULTS/analyses/<cell>/retrained.json sets the analysed run's final score beside the record's,
# so a reader sees whether the analysed weights are the recorded run's (same code and data: the
# same numbers; another CPU may round differently) or a sibling of it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=$1
SEED=$2
RESULTS=${3:-results}
MODEL=${4:-dema}
DEMA=${DEMA:-.venv/bin/dema}
case "$MODEL" in
  dema) GRID=mujoco-main RUNS=runs/analyses ;;
  dema-rnn) GRID=rnn-like RUNS=runs/rnn-like ;;
  *) echo "analysis_runs.sh: unknown model '$MODEL'; give dema or dema-rnn" >&2; exit 2 ;;
esac
CELL="${DATASET}_${MODEL}_cpu-main_s${SEED}"
RUN="$RUNS/$CELL"
OUT="$RESULTS/analyses/$CELL"
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"

# 1. the run directory: trained (or resumed) by the sweep, without writing a record ('' = none);
#    a finished cell (its eval.json) is skipped
"$DEMA" sweep "$GRID" --models "$MODEL" --seeds "$SEED" --datasets "$DATASET" --executor local --workers 1 \
  --runs-dir "$RUNS" --results-dir ''

# 2. the analyses, each skipped once its JSON is in the results folder
if [ "$MODEL" = dema ] && [ ! -f "$OUT/surgery.json" ]; then
  "$DEMA" surgery "$RUN" --episodes 5
  cp "$RUN/surgery/surgery.json" "$OUT/surgery.json"
fi
if [ "$MODEL" = dema ] && [ ! -f "$OUT/decay.json" ]; then
  "$DEMA" decay "$RUN" --episodes 5
  cp "$RUN/decay/decay.json" "$OUT/decay.json"
fi
if [ ! -f "$OUT/decay-episode.json" ]; then
  "$DEMA" decay "$RUN" --view episode --episodes 3 --out "$RUN/decay-episode"
  cp "$RUN/decay-episode/decay.json" "$OUT/decay-episode.json"
fi

# 3. the analysed run against its record
.venv/bin/python - "$RUN/eval.json" "$RESULTS/$GRID/$CELL.json" "$OUT/retrained.json" <<'PY'
import json, sys
run, record_path, out = sys.argv[1:]
mine = json.load(open(run))
try:
    record = json.load(open(record_path))
except OSError:
    record = {}
json.dump({"cell": mine.get("run_dir", run).rstrip("/").split("/")[-1],
           "retrained_normalized_mean": mine.get("normalized_mean"),
           "recorded_normalized_mean": record.get("normalized_mean"),
           "same_score": record.get("normalized_mean") == mine.get("normalized_mean")},
          open(out, "w"), indent=1)
PY
echo "analyses of $CELL in $OUT (tables: $DEMA analysis tables $OUT)"
