#!/usr/bin/env bash
# The faithful D4RL medium-replay recipe: SAC (Stable-Baselines3) trained until the medium level,
# its whole replay buffer written as datasets/ENV-sac-replay-v5.hdf5. Hours of CPU per environment:
# it runs in the background under nice, logs to datasets/ENV-sac-replay-v5.log, and checkpoints every
# 10k steps into datasets/ENV-sac-replay-v5.hdf5.work/; running this script again resumes.
# Usage: scripts/collect_sac_replay.sh hopper [extra dema collect options]
set -euo pipefail
cd "$(dirname "$0")/.."
env=${1:?usage: scripts/collect_sac_replay.sh ENV [options]}; shift
DEMA=${DEMA:-.venv/bin/dema}
mkdir -p datasets
out="datasets/${env}-sac-replay-v5.hdf5"
if [ -e "$out" ]; then echo "$out exists"; exit 0; fi
TQDM_MININTERVAL=60 nohup nice -n 10 "$DEMA" collect "$env" sac-replay --seed 0 --out "$out" "$@" \
  >> "datasets/${env}-sac-replay-v5.log" 2>&1 &
echo "started pid $! (log: datasets/${env}-sac-replay-v5.log)"
