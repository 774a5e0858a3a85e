#!/usr/bin/env bash
# Issues 14 and 24: the GPU figures in one command, for a session that is lent a GPU (under 5 minutes on an H100):
#   bash benchmarks/gpu_check.sh          (on the device machine; the table also goes to $OUT/gpu_check.md)
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh   (tiny sizes: tries the script on a CPU)
# The device image has torch and every dependency of benchkit but nothing can be fetched there, so
# benchkit itself is installed without dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import benchkit, benchkit.builtins" 2>/dev/null \
    || python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
python3 benchmarks/gpu_check.py --device "$DEVICE" ${QUICK:+--quick} 2>"$OUT/gpu_check.log" | tee "$OUT/gpu_check.md"
# the CUDA-graph equality test (skipped on a CPU), where pytest is installed
if python3 -c "import pytest" 2>/dev/null; then
    python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py 2>&1 | tail -3 | tee -a "$OUT/gpu_check.md"
fi
