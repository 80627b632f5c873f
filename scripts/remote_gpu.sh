#!/usr/bin/env bash
# The GPU side of the `fast` profile on one H100/H200 lent for a limited time (15 minutes in all,
# the machine's start and every idle wait included; at most 10 minutes a command), in two commands
# run from the repository root on a bare box (torch, torchvision, numpy, pandas, matplotlib, pyyaml,
# tqdm, pytest; no DVC, no Jupyter, no network):
#
#   scripts/remote_gpu.sh "$OUT" first    # 8 minutes at most: give it a limit of 480 s
#   scripts/remote_gpu.sh "$OUT" second   # only if 4 more minutes remain, on the same box: limit 240 s
#
# The data must be in data/ (the CIFAR-10 JPEG copy data/cifar10-jpeg.tar.xz, 18.5 MB; it is
# git-ignored, so send it along explicitly). `first` runs, in this order, each stage under its own
# time limit (seconds; REMOTE_LIMIT_<stage> overrides one, @ and - written as _), so that a stage
# that overruns is cut and the next one still gets its share:
#
#   stage                          limit  estimate on one H100 (docs/gpu.md, "Where the time estimates come from")
#   tests                             60  ~40 s: tests/test_cuda.py (bf16, channels_last, compile)
#   bench                             60  ~45 s: python -m sdnet.tools.bench --device cuda
#   train@resnet18                   110  ~70 s: 30 epochs, 5.3 PFLOP at 100 TFLOP/s, + 15 s start
#   evaluate@resnet18                 15  ~10 s: the 10000 test images once, in float32
#   train@sdnet18                    120  ~70 s: the same FLOPs (the CSC stem is 0.6% of them)
#   evaluate@sdnet18                  15  ~10 s
#   sweep_noise                       90  ~70 s: 483 passes over the 10000 test images, 5.4 PFLOP, + 84 of ResNet-18 behind filters
#
# and decodes the JPEG copy in the background meanwhile. `second` reuses the networks `first`
# left in reports/fast/models/ (the box must still be the same one) and runs
#
#   attack                            80  ~65 s: 500 images, 5 radii, 3 attacks, 1.3 PFLOP in float32, + ResNet-18 behind a blur
#   train@sdnet18_all                 65  ~55 s: 6 epochs, 3.2 PFLOP at 70 TFLOP/s
#   evaluate@sdnet18_all              10  ~5 s
#   train@sdnet18_all_noshortcut      65  ~55 s: the same
#   evaluate@sdnet18_all_noshortcut   10  ~5 s
#
# (the attacks need torchattacks, pure Python: put its wheel in wheels/, e.g. `pip download
# --no-deps torchattacks==3.5.1 -d wheels`, and send that folder along too).
#
# What comes back: as soon as a stage ends, OUT/results-<part>.tar is rewritten (atomically) with
# the outputs of every stage finished so far (dvc.yaml's outs, `python -m sdnet.pipeline outs`),
# the benchmark JSON, the params.yaml they ran with and every stage's log under
# logs/remote-gpu/<part>/ (`finished` lists the stages that finished). So a command killed at its
# limit still returns what it finished. No weights (45 MB each at width 64): the tar stays far
# below 16 MB. Back home (docs/gpu.md): `tar xf results-first.tar; tar xf results-second.tar;
# dvc commit -f $(cat logs/remote-gpu/*/finished)`, then `dvc repro` of the chapters (which also
# records, in seconds, the train@ stages of the runs the box did not train as not trained).
#
# The CPU dry run (tests/test_pipeline.py) runs exactly these commands with tiny sizes through
# REMOTE_DEVICE=cpu, REMOTE_DATASET, REMOTE_SET (more key=value assignments for params.yaml),
# REMOTE_TESTS (pytest arguments), REMOTE_BENCH (more bench arguments) and REMOTE_LIMIT_<stage>.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(realpath -m "${1:?usage: scripts/remote_gpu.sh OUTDIR first|second}")
part=${2:-first}
device=${REMOTE_DEVICE:-cuda}
dataset=${REMOTE_DATASET:-cifar10-jpeg}
logs=logs/remote-gpu/$part
pack_dir=$(mktemp -d)
trap 'rm -rf "$pack_dir"' EXIT
rm -rf "$logs"  # a rerun on the same box starts its logs afresh
mkdir -p "$out" "$logs" reports/benchmarks
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 SDNET_TEST_DEVICE=$device
t0=$(date +%s)
finished=()
status=0

note() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$out/remote_gpu-$part.log"; }

# params.yaml as the stages see it: the fast profile on $dataset, training `runs`.
params() {
  python -m sdnet.pipeline run --dry-run --profile fast --set profile=fast \
    --set "profiles.fast.data.datasets=[$dataset]" --set "profiles.fast.train.runs=[$1]" \
    $(for s in ${REMOTE_SET:-}; do echo "--set=$s"; done) > /dev/null
}

# Put a finished stage's outputs (no weights) and params.yaml into the pack; then, after any
# stage, rewrite the tar from the pack and the logs.
keep() {
  local path
  cp params.yaml "$pack_dir/params.yaml"
  for path in "$@"; do
    [ -e "$path" ] || continue
    rm -rf "${pack_dir:?}/$path"
    tar cf - --exclude='*.pt' "$path" | tar xf - -C "$pack_dir"
  done
}
pack() {
  rm -rf "${pack_dir:?}/logs"
  mkdir -p "$pack_dir/$logs"
  cp "$logs"/* "$pack_dir/$logs/"
  printf '%s\n' "${finished[@]}" | grep '@\|sweep_noise\|attack' > "$pack_dir/$logs/finished"
  tar cf "$out/.results-$part.tar.tmp" -C "$pack_dir" . && mv "$out/.results-$part.tar.tmp" "$out/results-$part.tar"
}

# stage NAME LIMIT COMMAND...: COMMAND under LIMIT seconds (its whole process group: timeout
# signals the group), its output in logs/remote-gpu/<part>/NAME.log.
stage() {
  local name=$1 limit=$2 var code took
  shift 2
  var=REMOTE_LIMIT_${name//[@-]/_}
  limit=${!var:-$limit}
  local start
  start=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" > "$logs/$name.log" 2>&1
  code=$?
  took=$(( $(date +%s) - start ))
  if [ $code = 0 ]; then
    finished+=("$name")
    note "$name: done in $took s (limit $limit s)"
    return 0
  fi
  status=1
  if [ $code = 124 ] || [ $code = 137 ]; then note "$name: CUT at its limit of $limit s"; else note "$name: FAILED (exit $code) after $took s"; fi
  tail -n 20 "$logs/$name.log"
  return 1
}

# stage_run NAME LIMIT: the dvc.yaml stage NAME through the runner, then its outputs into the pack;
# fails when the stage did (so `stage_run train@x ... && stage_run evaluate@x ...` scores only what trained).
stage_run() {
  local code=0
  stage "$1" "$2" python -m sdnet.pipeline run --profile fast "$1" && keep $(python -m sdnet.pipeline outs --profile fast "$1") || code=1
  pack
  return $code
}

note "remote_gpu.sh $part on $device, data $dataset"
case $part in
  first)
    params resnet18,sdnet18 || exit 2
    # Decode the JPEG copy once (about 10 s on 16 cores) while the GPU runs the tests and the benchmark.
    timeout 150 python -c "from sdnet.study import load_study; load_study('fast').datasets()" > "$logs/data.log" 2>&1 &
    decoding=$!
    stage tests 60 python -m pytest -q -p no:cacheprovider ${REMOTE_TESTS:-tests/test_cuda.py}
    pack
    # reports/benchmarks/h100.json, h200.json, ... (cpu.json in the dry run)
    name=$(python -c "import re, sys, torch
n = torch.cuda.get_device_name(0) if sys.argv[1] == 'cuda' else sys.argv[1]
print((re.findall(r'[A-Z]\d{2,3}', n) or [re.sub(r'\W+', '-', n)])[0].lower())" "$device")
    stage bench 60 python -m sdnet.tools.bench --device "$device" --json "reports/benchmarks/$name.json" ${REMOTE_BENCH:-} \
      && keep "reports/benchmarks/$name.json"
    pack
    wait $decoding || note "decoding the data failed: $(tail -n 3 "$logs/data.log")"
    stage_run train@resnet18 110 && stage_run evaluate@resnet18 15
    stage_run train@sdnet18 120 && stage_run evaluate@sdnet18 15
    stage_run sweep_noise 90
    ;;
  second)
    params resnet18,sdnet18 || exit 2
    if ! python -c "import torchattacks" 2> /dev/null && ls wheels/torchattacks-*.whl > /dev/null 2>&1; then
      python -m pip install -q --no-index --no-deps --target /tmp/sdnet-site wheels/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/sdnet-site
    fi
    stage_run attack 80
    # Each -All network joins `runs` when it trains: if one is cut, params.yaml in the tar still
    # says what was trained.
    params resnet18,sdnet18,sdnet18_all && stage_run train@sdnet18_all 65 && stage_run evaluate@sdnet18_all 10
    params resnet18,sdnet18,sdnet18_all,sdnet18_all_noshortcut && stage_run train@sdnet18_all_noshortcut 65 \
      && stage_run evaluate@sdnet18_all_noshortcut 10
    ;;
  *) echo "unknown part $part: first or second"; exit 2 ;;
esac
note "finished: ${finished[*]:-nothing}; $(du -k "$out/results-$part.tar" | cut -f1) KB in $out/results-$part.tar"
exit $status
