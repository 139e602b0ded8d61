#!/usr/bin/env bash
# Re-create the dataset bundled in the package (src/dema/bundled/hopper-medium-replay-small.hdf5):
# 100k transitions of the hopper medium-replay approximation, seed 0, 8 synchronous env copies,
# without next_observations (optional in D4RL) to keep the file small. docs/DATASETS.md records the
# versions it was made with; the file's `metadata` group records the same and the exact command.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMA=${DEMA:-.venv/bin/dema}
"$DEMA" collect hopper medium-replay --steps 100000 --seed 0 --num-envs 8 \
  --out src/dema/bundled/hopper-medium-replay-small.hdf5 --no-next-observations --overwrite "$@"
