#!/usr/bin/env bash
# The GPU check of issue 12, as one prepared run on a lent GPU machine (one H200, 16 cores, the repo
# copied over, no internet). Under 8 minutes; everything it measures goes to $OUT.
#
#   bash scripts/device_check.sh prepare    HERE, with the package index reachable: the wheels the
#                                           GPU machine lacks (gymnasium, mujoco and their
#                                           needs, for CPython 3.12) into .whl/ (git-ignored locally)
#   bash scripts/device_check.sh            ON THE GPU MACHINE (device tool: carry [".whl"]):
#       1. installs the carried wheels into /tmp/site (pip --no-index) and runs dema from src/; fails
#          clearly when something is missing;
#       2. collects the MuJoCo medium-replay and medium datasets in the background (CPU cores), unless
#          they are already in datasets/;
#       3. dema bench scan-gpu: the selective scan on the GPU, Triton kernel (several tile sizes), `torch`
#          PyTorch node, reference, and mamba-ssm's kernel if it is importable -> scan_gpu.json;
#       4. dema bench step --device cuda (Triton scan, then DEMA_SCAN=torch) -> bench/step_*.json;
#       5. dema bench throughput: training updates/s with 1 and 8 processes sharing the GPU -> throughput.json;
#          3-5 run alone on the GPU (the collectors use CPU cores only);
#       6. dema sweep over the mujoco-main cells whose datasets exist by then (models dema dt,
#          8 workers, the grid's own protocol), in the background, stopped by `timeout` before the
#          limit; BESIDE it (so sharing the GPU with it, as summary.txt says):
#       7. dema bench cost --device cuda at lengths 20, 100, 1000 -> bench/cost.json (+ plots), then
#       8. the scan tests on the GPU (pytest -n 8, junit xml);
#       9. packs runs (no checkpoints), results, bench and logs into grid_and_bench.tar.gz: the device
#          tool returns at most 8 files from $OUT.
#   bash scripts/device_check.sh --dry-run  CPU-safe parts only (here): the install check, the grid
#                                           subset and `dema sweep --dry-run`, the scan tests on the
#                                           CPU (Triton's interpreter); no timing, no GPU.
#
# DEVICE_CHECK_SECONDS (default 450) is the whole run's budget; each stage gets a `timeout` from what
# is left, so the script ends in time even when a stage hangs. Exit status: 0 when every stage ran,
# 1 when one failed (summary.txt says which); the outputs of the others are kept.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-run}
PY=${PYTHON:-python3}

# --- prepare (here) ----------------------------------------------------------------------------------
if [ "$MODE" = prepare ]; then
    mkdir -p .git/info .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    # pinned to what the project's CPU venv runs; mujoco 4 is three wheels (mujoco, -core, -studio)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
        gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 \
        glfw==2.11.0 PyOpenGL==3.1.10 websockets || exit 1
    du -sh .whl
    echo "then: device run(command='bash scripts/device_check.sh', carry=['.whl'], timeout_s=540)"
    exit 0
fi
if [ "$MODE" != run ] && [ "$MODE" != --dry-run ]; then
    echo "usage: bash scripts/device_check.sh [prepare|--dry-run]" >&2
    exit 2
fi

DRY=0
[ "$MODE" = --dry-run ] && DRY=1
OUT=${OUT:-$ROOT/device_out}
mkdir -p "$OUT"
LIMIT=${DEVICE_CHECK_SECONDS:-450}
START=$SECONDS
SUMMARY=$OUT/summary.txt
FAILED=()
: > "$SUMMARY"

log() { echo "[device_check +$((SECONDS - START))s] $*" | tee -a "$SUMMARY"; }
left() { echo $((LIMIT - (SECONDS - START))); }
# stage NAME SECONDS CMD...: CMD under `timeout`, capped by what is left less a 25 s reserve; output
# in NAME.log
stage() {
    local name=$1 want=$2
    shift 2
    local cap=$(($(left) - 25))
    [ "$want" -gt "$cap" ] && want=$cap
    if [ "$want" -lt 10 ]; then
        log "SKIP $name: no time left"
        FAILED+=("$name (no time)")
        return 1
    fi
    log "start $name (timeout ${want}s)"
    local t0=$SECONDS rc
    timeout -k 10 "$want" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    log "end $name: exit $rc after $((SECONDS - t0))s$([ $rc = 124 ] && echo ' (timed out)')"
    [ $rc -ne 0 ] && FAILED+=("$name (exit $rc)")
    return $rc
}

# --- 1. install -----------------------------------------------------------------------------------
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 MUJOCO_GL=egl
if [ $DRY = 0 ] && ls .whl/*.whl > /dev/null 2>&1; then
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl > "$OUT/install.log" 2>&1; then
        log "FAIL: pip install of the carried wheels (.whl/): see install.log"
        cat "$OUT/install.log"
        exit 1
    fi
    export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
if ! "$PY" - > "$OUT/versions.txt" 2>&1 << 'PYEOF'
import importlib, platform, sys
missing = []
for name in ("torch", "numpy", "numba", "h5py", "safetensors", "tqdm", "matplotlib", "yaml", "gymnasium", "mujoco",
             "triton"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
import torch
print("python", platform.python_version(), "| cuda available:", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
import dema.scan
print("scan on cuda tensors:", "mamba_ssm" if dema.scan.mamba_ssm_available() else
      ("gpu (Triton)" if dema.scan.gpu_scan_available() else "torch"))
if missing:
    sys.exit("missing: " + "; ".join(missing) + "\nrun `bash scripts/device_check.sh prepare` where pip works and "
             "carry .whl")
PYEOF
then
    cat "$OUT/versions.txt"
    log "FAIL: dependencies missing (versions.txt)"
    exit 1
fi
tee -a "$SUMMARY" < "$OUT/versions.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; echo "cores: $(nproc)"; uptime; } \
    >> "$SUMMARY" 2>&1

# --- 2. datasets in the background -----------------------------------------------------------------
COLLECT_PIDS=()
if [ $DRY = 0 ]; then
    mkdir -p datasets "$OUT/collect"
    for spec in "halfcheetah medium-replay" "hopper medium-replay" "walker2d medium-replay" \
        "halfcheetah medium" "hopper medium" "walker2d medium"; do
        set -- $spec
        ls datasets/"$1-$2"-v*.hdf5 > /dev/null 2>&1 && continue
        nice -n 5 "$PY" -m dema.cli collect "$1" "$2" --no-progress > "$OUT/collect/$1-$2.log" 2>&1 &
        COLLECT_PIDS+=($!)
    done
    log "collecting ${#COLLECT_PIDS[@]} datasets in the background (pids ${COLLECT_PIDS[*]:-none})"
fi

# --- 3-5. timings on the GPU, each alone on it -------------------------------------------------------
if [ $DRY = 0 ]; then
    stage scan_gpu 50 "$PY" -m dema.cli bench scan-gpu --json --out "$OUT"
    mkdir -p "$OUT/bench"
    stage step_gpu_scan 30 "$PY" -m dema.cli bench step --device cuda --json --budget 8 --out "$OUT/bench"
    mv -f "$OUT/bench/step.json" "$OUT/bench/step_gpu_scan.json" 2> /dev/null
    DEMA_SCAN=torch stage step_torch_scan 22 "$PY" -m dema.cli bench step --device cuda --json --budget 5 \
        --out "$OUT/bench"
    mv -f "$OUT/bench/step.json" "$OUT/bench/step_torch_scan.json" 2> /dev/null

    stage throughput 50 "$PY" -m dema.cli bench throughput --device cuda --processes 1,8 --json --out "$OUT"
fi

# --- 6-8. the grid, with the cost study and the scan tests beside it ---------------------------------
GRID=$OUT/mujoco-main.yaml
"$PY" - "$GRID" << 'PYEOF' 2>&1 | tee -a "$SUMMARY"
import sys
from importlib import resources

import yaml

from dema.data.load import search_path

grid = yaml.safe_load(resources.files("dema.experiments").joinpath("grids/mujoco-main.yaml").read_text())
# finished files only: `dema collect` renames a dataset onto its name when it is complete
have = [name for name in grid["datasets"]
        if any(any(folder.glob(pattern)) for folder in search_path() if folder.is_dir()
               for pattern in (f"{name}-v*.hdf5", f"{name}.hdf5"))]
grid["datasets"] = have or grid["datasets"][:1]
yaml.safe_dump(grid, open(sys.argv[1], "w"))
print("grid cells from datasets:", ", ".join(have) or "none found (the sweep's cells will fail)")
PYEOF

if [ $DRY = 1 ]; then
    stage sweep_dry_run 60 "$PY" -m dema.cli sweep "$GRID" --executor local --models dema dt --dry-run \
        --runs-dir "$OUT/runs" --results-dir "$OUT/results"
    TRITON_INTERPRET=1 stage scan_tests 240 "$PY" -m pytest -q -p no:cacheprovider tests/scan/test_scan_gpu.py \
        --junitxml "$OUT/scan_tests.xml"
else
    # the datasets still being collected will not be in this sweep: stop their collectors
    for pid in "${COLLECT_PIDS[@]}"; do kill "$pid" 2> /dev/null; done
    SWEEP_S=$(($(left) - 30))
    log "sweep in the background for at most ${SWEEP_S}s; the cost study and the scan tests share the GPU with it"
    timeout -s INT -k 15 "$SWEEP_S" "$PY" -m dema.cli sweep "$GRID" --executor local --device cuda --workers 8 \
        --models dema dt --runs-dir "$OUT/runs" --results-dir "$OUT/results" > "$OUT/sweep.log" 2>&1 &
    SWEEP_PID=$!
    stage cost_gpu 100 "$PY" -m dema.cli bench cost --device cuda --json --budget 1 --lengths 20,100,1000 --out "$OUT/bench"
    stage scan_tests 120 "$PY" -m pytest -q -p no:cacheprovider -n 8 tests/scan/test_scan_gpu.py \
        tests/scan/test_scan_variants.py tests/scan/test_scan_with_state.py --junitxml "$OUT/scan_tests.xml"
    wait "$SWEEP_PID"
    log "sweep ended: exit $? (124 or 130: stopped at the time limit)"
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv >> "$SUMMARY" 2>&1
fi

# --- 9. pack ---------------------------------------------------------------------------------------
log "run records written: $(ls "$OUT"/results/*/*.json 2> /dev/null | wc -l)"
log "scan tests: $(grep -h -E 'passed|failed|error' "$OUT/scan_tests.log" 2> /dev/null | tail -1)"
[ ${#FAILED[@]} -gt 0 ] && log "stages that failed: ${FAILED[*]}"
log "done in $((SECONDS - START))s"
(
    cd "$OUT" || exit 1
    tar --exclude='*.pt' --exclude='*.safetensors' --exclude='*.ckpt' -czf grid_and_bench.tar.gz \
        $(ls -d runs results bench collect ./*.log ./*.json ./*.yaml versions.txt 2> /dev/null) &&
        rm -rf runs results bench collect ./*.log ./*.yaml
)
# what comes back (at most 8 files): summary.txt, versions.txt, scan_tests.xml, scan_gpu.json,
# throughput.json and grid_and_bench.tar.gz
[ ${#FAILED[@]} -eq 0 ]
