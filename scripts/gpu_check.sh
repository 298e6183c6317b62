#!/usr/bin/env bash
# GPU check of the search pipeline: one call, about 5 minutes, on an H100/H200 machine that reaches no network.
#
# What it does (scripts/gpu_check.py; --parts picks some, in this order, the most important first):
#   vectorized       K = 16, 1, 5, 32 seeds of each method as ONE vectorized search (StackedSupernet + SeedGroup +
#                    the method's group_step; DARTS-V1 and GDAS first, then E2NAS, then the others; a method whose
#                    vectorize_reason is not "" is listed with it) on CIFAR-10-sized random data (C=16, N=5, 32x32,
#                    batch 64, ENAS 128), against ONE xautodl process's step of the same method, interleaved in one
#                    process: steps/s per seed-equivalent (K x group steps/s), the ratio to the reference, the peak
#                    GPU memory per K (a K that runs out of memory is recorded, larger K skipped); the goals (>= 20x
#                    for DARTS-V1 and GDAS at K = 16; a 250-epoch E2NAS search <= 1 GPU-hour per seed-equivalent,
#                    projected from its group step). CUDA graphs: the JSON's "cuda_graph" slot says "not built".
#   group-vs-single  the group step of 5 seeds against 5 single-seed steps of ours in a row.
#   steps            every method's step, ours against xautodl's, interleaved, eager fp32 and with the fast options
#                    (bf16 autocast + TF32 + channels-last).
#   k-seeds          aggregate steps/s of K = 1, 4, 8, 16 seeds of DARTS-V1 and GDAS as K processes on the one GPU
#                    (as `nas-suite run --workers K --device cuda` runs them).
#   e2nas            a projected full E2NAS search from its expensive regime (250 epochs x 391 steps).
#   compile          DARTS-V1 with torch.compile.
# Writes $OUT/gpu_check.json (rewritten after every measurement) and $OUT/gpu_check.log.
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
# and a timeout_s of about 330: the vectorized parts start nothing after --v-budget-s (150 s), the others nothing
# after GPU_CHECK_BUDGET_S (default 240 s; the parts after the vectorized ones get what is left), and the script is
# killed at 300 s; a cut run still returns its part. For issue 17's figures alone, with time to spare:
#
#   bash scripts/gpu_check.sh --parts vectorized,group-vs-single
#
# Without the wheel it runs ours only and says so. Extra arguments go to scripts/gpu_check.py (--help). Its CPU dry
# run (about 30 s): python scripts/gpu_check.py --device cpu --size tiny --steps 1 --warmup 0 --k 1,2 --k-steps 1
# --no-compile --vk 1,2 --v-steps 1 --v-warmup 0 --single-k 2 --threads 1 --out /tmp/gpu_check.json
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
