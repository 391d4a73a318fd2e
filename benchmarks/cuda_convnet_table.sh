#!/usr/bin/env bash
# Start, or resume, the CPU runs behind docs/experiments.md's cuda-convnet sections, in the
# background, one CPU thread each, niced, so that they survive the shell and go on in pieces:
#   table     §3.3's table: cifar_local_11pct and cifar_local_13pct (`alexnet train --preset
#             cuda-convnet`), one run folder OUT/<model>-seed<S> per seed in SEEDS
#   fig1      Fig. 1 on the 13 % net: `alexnet experiment relu-vs-tanh --net cuda-convnet`
#   ablations `alexnet experiment ablations --net cuda-convnet` (waits for fig1 to end first)
# A run folder with last.pt is resumed (exact on the same CPU), one with summary.json is finished,
# one whose pid file names a live process is running: each is left as it is. Logs: OUT/<job>.log.
#
#   ALEXNET_DATA=/work/shared/data/cifar10-jpeg.tar bash benchmarks/cuda_convnet_table.sh OUT [JOB] [SEEDS]
#   (defaults: JOB table, SEEDS "0"; ALEXNET_DATA ../shared/data/cifar10-jpeg.tar)
set -euo pipefail
OUT=${1:-runs/cuda-convnet}
JOB=${2:-table}
SEEDS=${3:-0}
DATA=${ALEXNET_DATA:-../shared/data/cifar10-jpeg.tar}
mkdir -p "$OUT"

launch() {  # launch NAME COMMAND...: in the background unless NAME's pid is alive
  local name=$1; shift
  if [[ -f "$OUT/$name.pid" ]] && kill -0 "$(cat "$OUT/$name.pid")" 2>/dev/null; then
    echo "$name: running (pid $(cat "$OUT/$name.pid"))"; return
  fi
  echo "$name: $*" | tee -a "$OUT/$name.log"
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 setsid nohup nice -n 5 "$@" >>"$OUT/$name.log" 2>&1 </dev/null &
  echo $! >"$OUT/$name.pid"
}

case $JOB in
  table)
    for seed in $SEEDS; do
      for model in cifar_local_11pct cifar_local_13pct; do
        run="$model-seed$seed"
        if [[ -f "$OUT/$run/summary.json" ]]; then echo "$run: finished"; continue; fi
        if [[ -f "$OUT/$run/last.pt" ]]; then
          launch "$run" alexnet train --resume "$OUT/$run" --quiet
        else
          launch "$run" alexnet train --preset cuda-convnet --model "$model" --seed "$seed" --data "$DATA" \
            --run-dir "$OUT/$run" --workers 1 --quiet --overwrite
        fi
      done
    done ;;
  fig1)
    launch fig1 alexnet experiment relu-vs-tanh --net cuda-convnet --data "$DATA" --images 10000 \
      --epochs 60 --out "$OUT/fig1" --workers 1 ;;
  ablations)  # after fig1, if that is running: one extra process at a time beside the table
    launch ablations bash -c 'while [[ -f "$1/fig1.pid" ]] && kill -0 "$(cat "$1/fig1.pid")" 2>/dev/null; do
        sleep 60; done; exec alexnet experiment ablations --net cuda-convnet --data "$2" --seeds 2 \
        --images 10000 --epochs 10 --out "$1/ablations" --workers 1' _ "$OUT" "$DATA" ;;
  *) echo "JOB must be table, fig1 or ablations, got $JOB" >&2; exit 2 ;;
esac
