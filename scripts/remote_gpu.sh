#!/usr/bin/env bash
# The GPU side of the study, on a bare GPU box (torch, pandas, matplotlib, pyyaml, tqdm, pytest;
# no DVC, no Jupyter needed), from the repository root:
#
#   scripts/remote_gpu.sh [OUTDIR] [STEP ...]
#
# Steps (default: all, in this order; run them in separate calls where one call's time is limited):
#   tests   the CUDA test module and the CSC layer's tests on the GPU
#   bench   python -m sdnet.bench: SDNet-18(-All) vs ResNet-18 throughput -> reports/benchmarks/<gpu>.json
#   train   the fast profile's training stages (train@...)
#   study   its noise sweep and attacks (sweep_noise, attack)
# The data (the CIFAR-10 JPEG copy, data/cifar10-jpeg.tar.xz; or CIFAR-10 in data/) must be there.
# Each step's output goes to OUTDIR/<step>.log; at the end OUTDIR/results.tar holds reports/fast/,
# reports/benchmarks/ and params.yaml. Back home: unpack, then `dvc commit -f train sweep_noise
# attack && dvc repro` (README, "Training on a remote GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-results}
shift || true
steps=${*:-tests bench train study}
mkdir -p "$out" reports/benchmarks
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
dataset=${SDNET_FAST_DATASET:-cifar10-jpeg}   # the fast profile on the JPEG copy unless told otherwise
gpu=$(python -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")

for step in $steps; do
  start=$(date +%s)
  case $step in
    tests) python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_csc.py ;;
    bench) python -m sdnet.bench --json "reports/benchmarks/$gpu.json" ;;
    train) python -m sdnet.pipeline run --profile fast --set "profiles.fast.data.datasets=[$dataset]" train ;;
    study) python -m sdnet.pipeline run --profile fast --set "profiles.fast.data.datasets=[$dataset]" sweep_noise attack ;;
    *) echo "unknown step $step (tests, bench, train, study)"; exit 2 ;;
  esac > "$out/$step.log" 2>&1 || { tail -n 40 "$out/$step.log"; echo "$step FAILED"; status=1; }
  echo "$step: $(( $(date +%s) - start )) s"
  [ "${status:-0}" = 0 ] || break
done
tar cf "$out/results.tar" params.yaml reports/benchmarks $( [ -d reports/fast ] && echo reports/fast )
exit "${status:-0}"
