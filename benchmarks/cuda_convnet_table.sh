#!/usr/bin/env bash
# Start, or resume, the runs of §3.3's CIFAR-10 table (cuda-convnet's conv-local nets, the 13 % net
# without rnorm and the 11 % net with it) in the background, one CPU thread each, niced, so they
# survive the shell and can go on in pieces. Each run is a folder OUT/<model>-seed<S> of
# `alexnet train --preset cuda-convnet`; a folder with last.pt is resumed (`--resume`, exact on
# the same CPU), one with summary.json is finished and left alone, one whose pid is alive is
# running and left alone. Logs: OUT/<run>.log. Reported in docs/experiments.md.
#
#   bash benchmarks/cuda_convnet_table.sh [OUT] [SEEDS]     # defaults: runs/cuda-convnet, "0"
#   ALEXNET_DATA=/path/to/cifar10-jpeg.tar bash benchmarks/cuda_convnet_table.sh /work/runs/i24 "0 1"
set -euo pipefail
OUT=${1:-runs/cuda-convnet}
SEEDS=${2:-0}
DATA=${ALEXNET_DATA:-../shared/data/cifar10-jpeg.tar}
MODELS=${MODELS:-"cifar_local_11pct cifar_local_13pct"}
mkdir -p "$OUT"
for seed in $SEEDS; do
  for model in $MODELS; do
    run="$OUT/$model-seed$seed"
    if [[ -f "$run.pid" ]] && kill -0 "$(cat "$run.pid")" 2>/dev/null; then
      echo "$run: running (pid $(cat "$run.pid"))"; continue
    fi
    if [[ -f "$run/summary.json" ]]; then echo "$run: finished"; continue; fi
    if [[ -f "$run/last.pt" ]]; then
      cmd=(alexnet train --resume "$run" --quiet)
    else
      cmd=(alexnet train --preset cuda-convnet --model "$model" --seed "$seed" --data "$DATA"
           --run-dir "$run" --workers 1 --quiet --overwrite)
    fi
    echo "$run: ${cmd[*]}" | tee -a "$run.log"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 setsid nohup nice -n 5 "${cmd[@]}" >>"$run.log" 2>&1 </dev/null &
    echo $! >"$run.pid"
  done
done
