#!/usr/bin/env bash
# One lent GPU session in one command (under the device tool's 10-minute limit per command):
# the device check, the speed suite on CUDA, then, where ROW names one, a long MNIST row trained
# for a fixed time from its committed resume state (if any), its new state brought back to be
# committed. No row by default: the EoNADE row, which this step continued, is finished; the
# 2 x 8000, 32-mask MADE (ROW=made-8000x2-32masks) has a resume state of about 0.9 GB, far
# too large to commit, so on a GPU it is one run to its end (BENCHMARKS.md, "Finishing the GPU rows").
#
# Here, before the call (.data/ is git-ignored; the device does not see ../shared):
#   mkdir -p .data && cp ../shared/data/binarized_mnist.npz .data/
# Device tool:  run(command="bash benchmarks/gpu_session.sh", carry=[".data"], timeout_s=600)
# Then here:    copy <files_at>/resume/mnist/<row>/<point>/* into benchmarks/resume/mnist/<row>/<point>/
#               (it replaces the committed state) and read <files_at>/*.json.
#
# Budgets (seconds, environment): CHECK_SECONDS (90), SPEED_SECONDS (180), ROW_SECONDS (240).
# Each step is cut at its budget and the script goes on: a cut run keeps every finished epoch
# (its resume state is written atomically at each epoch's end).
set -u
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
export ARDENS_DATA=${ARDENS_DATA:-.data}
PY=${PYTHON:-python3}
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

timeout "${CHECK_SECONDS:-90}" $PY benchmarks/device_check.py --device "$DEVICE" --json "$OUT/device-check.json" \
    > "$OUT/device-check.log" 2>&1
echo "device check: exit $?"; tail -1 "$OUT/device-check.log"

timeout "${SPEED_SECONDS:-180}" $PY benchmarks/speed.py --device "$DEVICE" --quick --reps 3 --no-memory \
    --json "$OUT/speed-$DEVICE.json" > "$OUT/speed.log" 2>&1
echo "speed suite: exit $? (124: cut at its budget)"

ROW=${ROW:-}
[ -z "$ROW" ] && { echo "no ROW: done"; exit 0; }
timeout -s TERM "${ROW_SECONDS:-240}" $PY benchmarks/reproduce.py mnist --rows "$ROW" --device "$DEVICE" \
    --data-dir "$ARDENS_DATA" --validation-only > "$OUT/row.log" 2>&1
echo "$ROW: exit $? (124: cut at its budget)"; grep -E "^epoch" "$OUT/row.log" | tail -2
$PY benchmarks/reproduce.py mnist --rows "$ROW" --commit-resume --data-dir "$ARDENS_DATA" >> "$OUT/row.log" 2>&1 \
    && mkdir -p "$OUT/resume" && cp -r benchmarks/resume/mnist "$OUT/resume/"
echo "resume state: $(du -sh "$OUT/resume" 2>/dev/null | cut -f1)"
