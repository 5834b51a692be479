#!/usr/bin/env bash
# One lent GPU session in one command (under the device tool's 10-minute limit per command):
# the device check, the speed suite on CUDA, then the EoNADE row's training continued from
# its committed resume state for a fixed time, its new state brought back to be committed.
#
# Here, before the call (.data/ is git-ignored; the device does not see ../shared):
#   mkdir -p .data && cp ../shared/data/binarized_mnist.npz .data/
# Device tool:  run(command="bash benchmarks/gpu_session.sh", carry=[".data"], timeout_s=600)
# Then here:    copy <files_at>/resume/mnist/eonade/<point>/* into benchmarks/resume/mnist/eonade/<point>/
#               (it replaces the committed state) and read <files_at>/*.json.
#
# Budgets (seconds, environment): CHECK_SECONDS (90), SPEED_SECONDS (180), EONADE_SECONDS (240).
# Each step is cut at its budget and the script goes on: a cut EoNADE run keeps every finished
# epoch (its resume state is written atomically at each epoch's end).
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

timeout -s TERM "${EONADE_SECONDS:-240}" $PY benchmarks/reproduce.py mnist --rows eonade --device "$DEVICE" \
    --data-dir "$ARDENS_DATA" --validation-only > "$OUT/eonade.log" 2>&1
echo "EoNADE: exit $? (124: cut at its budget)"; grep -E "^epoch" "$OUT/eonade.log" | tail -2
$PY benchmarks/reproduce.py mnist --rows eonade --commit-resume --data-dir "$ARDENS_DATA" >> "$OUT/eonade.log" 2>&1 \
    && mkdir -p "$OUT/resume" && cp -r benchmarks/resume/mnist "$OUT/resume/"
echo "resume state: $(du -sh "$OUT/resume" 2>/dev/null | cut -f1)"
