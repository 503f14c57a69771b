#!/usr/bin/env bash
# The checks to run in one go when a GPU machine is available (the CUDA path is otherwise untested):
#   bash scripts/gpu_check.sh [OUT_DIR]
# 1. the suite's CUDA-only tests (they skip on a CPU machine); 2. `python -m benchmark.perf --gpu`
# (ResNet-18 harness vs bare AMP loop per method, packed-run throughput); 3. a short grid of the
# CIFAR preset's methods on random-cifar (AMP, channels_last, calibration on a GPU); 4. with two or
# more GPUs, one run on every GPU with --procs-per-run (NCCL) against one GPU. Everything it prints
# is also written to OUT_DIR/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_check}}"
mkdir -p "$out"
log="$out/gpu_check.log"
bash scripts/prunebench.sh setup >"$out/setup.log" 2>&1 || { echo "setup failed: see $out/setup.log"; exit 1; }
py=.venv/bin/python
step() { echo "== $*" | tee -a "$log"; }

step "device"
nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee -a "$log"
$py -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.device_count())" 2>&1 | tee -a "$log"

step "CUDA tests"
$py -m pytest -q -p no:cacheprovider -x tests/test_amp.py tests/test_train.py tests/test_executors.py 2>&1 \
    | tail -5 | tee -a "$log"

step "python -m benchmark.perf --gpu"
timeout 300 $py -m benchmark.perf --gpu --epochs 3 2>&1 | tail -30 | tee -a "$log"

step "short CIFAR grid on random-cifar"
timeout 300 $py run_benchmarks.py --dataset random-cifar --model resnet20 --methods gmp granet dnr grda \
    --sparsities 0.9 --seeds 0 --epochs 2 --out "$out/grid" --no-progress 2>&1 | tail -20 | tee -a "$log"

gpus=$($py -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
    step "one run on $gpus GPUs (--procs-per-run $gpus, NCCL) vs one GPU"
    timeout 300 $py -m benchmark.perf --procs "$gpus" --models resnet18 --device cuda 2>&1 | tail -3 | tee -a "$log"
    timeout 300 $py -m pytest -q -p no:cacheprovider tests/test_distributed.py 2>&1 | tail -3 | tee -a "$log"
else
    step "one GPU: --procs-per-run (NCCL) needs two; skipped"
fi
