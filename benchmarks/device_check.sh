#!/usr/bin/env bash
# Device check of the paper-scale runs (issue 9); see benchmarks/device_check.py.
#
#   bash benchmarks/device_check.sh              # GPU machine: reads the carried device_data/
#   bash benchmarks/device_check.sh --cpu-smoke  # anywhere: tiny sizes on synthetic data (CI)
#
# Prepare once, where the workflow's results are (writes the git-ignored device_data/):
#   PYTHONPATH=src python benchmarks/device_check.py pack --results results --out device_data
# (--out names the folder here; the GPU run reads it with --data, default device_data).
#
# Runs from the repository root with PYTHONPATH=src (no installed package needed). Writes to
# $OUT (default ./device_out): device_check.{csv,md} (the table), bench.csv, train.json,
# score.json, determinism.json, loss.csv and device_check.log. Every part runs under its own
# timeout, so the whole check ends within 9 minutes (GPU; TRAIN_SECONDS=180 of training, then
# 4 short trainings for the determinism rows) even if one hangs;
# a part that fails or times out is named in the table and makes the exit status non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

smoke=0
case "${1:-}" in
  --cpu-smoke) smoke=1 ;;
  "") ;;
  *) echo "usage: $0 [--cpu-smoke]" >&2; exit 2 ;;
esac

OUT=${OUT:-./device_out}
PY=${PYTHON:-python3}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
rm -f "$OUT"/{bench.csv,train.json,score.json,determinism.json,loss.csv,device_check.csv,device_check.md,device_check.log}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOG="$OUT/device_check.log"
failed=()
start=$SECONDS

part() {  # part NAME TIMEOUT_S ARGS...: one python part under `timeout`, logged
  local name=$1 limit=$2
  shift 2
  echo "== $name (timeout ${limit} s, at $((SECONDS - start)) s)" | tee -a "$LOG"
  timeout --kill-after=5 "$limit" "$PY" benchmarks/device_check.py "$@" --out "$OUT" \
    --work "$WORK" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "!! $name: exit $rc$({ [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && echo ' (timed out)')" | tee -a "$LOG"
    failed+=("$name:exit-$rc")
  fi
}

if [ "$smoke" = 1 ]; then
  DATA="$WORK/data"
  part synth 120 synth --smoke --data "$DATA"
  part bench 120 bench --smoke --data "$DATA"
  part train 120 train --smoke --data "$DATA" --seconds 3 --workers 1
  part score 120 score --smoke --data "$DATA"
  part determinism 120 determinism --smoke --data "$DATA" --workers 0
else
  DATA=${DEVICE_DATA:-device_data}
  if [ ! -f "$DATA/isbi2012.npz" ]; then
    echo "no $DATA/isbi2012.npz: pack it first (see the top of $0) and carry $DATA" >&2
    exit 2
  fi
  { command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm \
      --format=csv; } 2>&1 | tee -a "$LOG"
  # 16 CPUs there: enough workers that augmentation keeps up with the GPU
  workers=${WORKERS:-12}
  part bench 100 bench --data "$DATA"                                        # (a)
  part train 270 train --data "$DATA" --seconds "${TRAIN_SECONDS:-180}" --workers "$workers"
  part score 60 score --data "$DATA"                                         # (b)
  part determinism 90 determinism --data "$DATA" --workers "$workers"       # (d)
fi
part report 20 report --failed "${failed[@]}"                                # (c)
echo "device check done in $((SECONDS - start)) s; ${#failed[@]} part(s) failed" | tee -a "$LOG"
[ "${#failed[@]}" -eq 0 ]
