#!/usr/bin/env bash
# GPU check of the search pipeline: one call, under 5 minutes, on an H100/H200 machine that reaches no network.
#
# What it does (scripts/gpu_check.py): every method's search step on CIFAR-10-sized random data (C=16, N=5, 32x32,
# batch 64, ENAS 128), ours against xautodl's, interleaved in one process, eager fp32 and with the fast options
# (bf16 autocast + TF32 + channels-last; DARTS-V1 also torch.compile); aggregate steps/s of K = 1, 4, 8, 16 seeds
# of DARTS-V1 and GDAS trained at once on the one GPU (one process per seed, as `nas-suite run --workers K
# --device cuda` runs them); a projected full E2NAS search (250 epochs x 391 steps). Writes $OUT/gpu_check.json
# and $OUT/gpu_check.log.
#
# The machine has torch (and numpy, click, pyyaml, filelock) but not xautodl, the reference. Carry it as a wheel
# (pure Python, 226 kB), prepared on the development machine, in the repo root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl xautodl==1.0.0
#
# then call the device tool's run with carry [".whl"] and the command
#
#   bash scripts/gpu_check.sh
#
# and a timeout_s of about 330 (the script stops starting measurements after GPU_CHECK_BUDGET_S, default 240 s,
# and is killed at 300 s; the JSON is rewritten after every measurement, so a cut run still returns its part).
# Without the wheel it runs ours only and says so. Extra arguments go to scripts/gpu_check.py (--help).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/xautodl-*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
else
    echo "gpu_check: no .whl/xautodl-*.whl carried: reference timings will be missing (see this script's header)"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
timeout 300 python3 scripts/gpu_check.py --out "$OUT/gpu_check.json" --budget-s "${GPU_CHECK_BUDGET_S:-240}" "$@" \
    2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "gpu_check: exit $rc; results in $OUT/gpu_check.json"
exit "$rc"
