#!/usr/bin/env bash
# The CarRacing-v3 GPU run behind results/carracing/ and results/throughput.md, in the call pattern of
# ../shared/GPU.md (each device call <= 10 min; the run lives in the background between back-to-back calls).
#
#   bash results/carracing/gpu_run.sh bench    # call 1: update and collection throughput, before/after (~6 min)
#   bash results/carracing/gpu_run.sh start    # call 2: start training in the background (returns at once)
#   bash results/carracing/gpu_run.sh wait     # calls 3..: sleep ~9 min, print progress and GPU utilisation
#   bash results/carracing/gpu_run.sh report   # last call: 20+ eval episodes on fresh tracks, files into $OUT
#   bash results/carracing/gpu_run.sh peer     # sheeprl dreamer_v2 at the same sizes (the peer ratio, ~3 min)
#   bash results/carracing/gpu_run.sh short    # one call for a short loan (<= 15 min): the benchmarks above in order
#                                              # of priority, each stage time-boxed, files into $OUT as they finish,
#                                              # then a 6k-step CUDA training run of the carracing preset
#   bash results/carracing/gpu_run.sh eval DIR NAME  # a CPU run's 100-track evaluation on the machine's 16 cores
#                                              # (~4 min instead of ~25 here): report.py's greedy evaluation in 16
#                                              # processes, then the sampled policy on 16 envs, files into $OUT/NAME;
#                                              # DIR made by results/carracing/slim_checkpoint.py (no replay buffer);
#                                              # SAMPLE=0 skips the sampled policy
#   bash results/carracing/gpu_run.sh latent DIR...  # latent_mode_eval.py on the 16 cores: each copy's 100 tracks on
#                                              # the posterior's mode, then sampled (~1 min per table); WHEELS and
#                                              # DIRs as for eval (three 9.7 MiB copies fit beside .whl-eval)
#
# Every call needs the wheels the GPU image lacks: ../shared/tools/gpu-wheels.sh, and `carry: [".whl"]`;
# `peer` also needs benchmarks/peer-wheels.sh run here and `carry: [".whl", ".whl-peer"]`. `eval` carries only
# gymnasium, box2d, pygame-ce and farama-notifications (WHEELS=.whl-eval, a folder holding those four from .whl)
# and DIR, to stay within the 64 MiB a call can carry.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${WHEELS:-.whl}"/*.whl
export PYTHONPATH=/tmp/site:$PWD
RUN=/tmp/run                      # outside the working tree, which is re-sent at every call
STEPS=${STEPS:-100000}            # policy steps (x2 frames with action repeat 2)
mkdir -p "$RUN" "${OUT:-/tmp/out}"
OUT=${OUT:-/tmp/out}

install_peer() {  # sheeprl and what its dreamer_v2 imports, from the carried .whl-peer
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/peer .whl-peer/*.whl
}
peer_runs() {  # sheeprl dreamer_v2 at the paper size (fp32, bf16), then ours at the same size, in one sitting
  for precision in 32-true bf16-mixed; do
    PYTHONPATH=/tmp/peer:/tmp/site python3 benchmarks/sheeprl_dreamer_v2.py --size paper --device cuda \
      --precision "$precision" --updates 20
  done
  for precision in fp32 bf16; do
    python3 -m dreamer_tutorial.bench --presets paper --device cuda --updates 20 --precision "$precision"
  done
}
export -f peer_runs

case "${1:-}" in
  bench)
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/hardware.txt"
    for args in "--precision fp32" "--precision bf16" "--precision bf16 --compile"; do
      python3 -m dreamer_tutorial.bench --presets paper carracing --device cuda --updates 20 $args --continuous
    done 2>&1 | tee "$OUT/bench_updates.txt"
    python3 -m dreamer_tutorial.bench --collect --presets carracing --num_envs 1 4 8 16 --steps 2000 --device cuda \
      2>&1 | tee "$OUT/bench_collect.txt"
    ;;
  start)
    setsid nohup python3 -m dreamer_tutorial.train --preset carracing --steps "$STEPS" --logdir "$RUN/carracing" \
      --no-progress > "$RUN/log" 2>&1 < /dev/null &
    sleep 60; tail -5 "$RUN/log"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
    ;;
  wait)
    sleep "${2:-540}"
    tail -n 3 "$RUN/carracing/metrics.csv" | cut -c1-200; tail -2 "$RUN/log"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
    ;;
  peer)
    install_peer
    peer_runs 2>&1 | grep -v Warning | tee "$OUT/bench_peer.txt"
    ;;
  short)
    stage() { local limit=$1 name=$2; shift 2; echo "== $name" >&2
      timeout "$limit" "$@" 2>&1 | grep -v Warning | tee "$OUT/$name.txt" || echo "($name: stopped after ${limit}s)"; }
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
      python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } > "$OUT/hardware.txt"
    cat "$OUT/hardware.txt"
    stage 75 bench_fp32 python3 -m dreamer_tutorial.bench --presets small carracing_cpu carracing paper --device cuda \
      --updates 20 --continuous
    install_peer
    stage 120 bench_peer bash -c peer_runs
    stage 45 bench_bf16 python3 -m dreamer_tutorial.bench --presets carracing paper --device cuda --updates 20 \
      --precision bf16 --continuous
    stage 45 bench_collect python3 -m dreamer_tutorial.bench --collect --presets carracing --num_envs 1 4 16 \
      --steps 1600 --device cuda
    stage 120 train_cuda python3 -m dreamer_tutorial.train --preset carracing --steps 6000 --prefill 2000 \
      --eval_every 6000 --eval_episodes 2 --log_every 1000 --logdir "$RUN/smoke" --device cuda --no-progress
    cp "$RUN/smoke/metrics.csv" "$OUT/train_cuda_metrics.csv" 2>/dev/null || true
    stage 60 bench_compile python3 -m dreamer_tutorial.bench --presets carracing --device cuda --updates 20 \
      --precision bf16 --compile --continuous
    ;;
  report)
    python3 results/carracing/report.py "$RUN/carracing" "$OUT" --episodes 24
    cp "$RUN/log" "$OUT/train_log.txt"
    ;;
  eval)
    dir=$2 name=$3
    nproc; mkdir -p "$OUT/$name"
    CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 timeout 330 python3 results/carracing/report.py "$dir" "$OUT/$name" \
      --episodes 100 --jobs 16
    [ "${SAMPLE:-1}" = 0 ] || CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=4 timeout 200 python3 -m dreamer_tutorial.evaluate \
      --logdir "$dir" --episodes 100 --sample --num_envs 16 --csv "$OUT/$name/eval_sampled_episodes.csv" --no-progress
    rm -f "$OUT/$name/metrics.csv"  # the run's own, already here; at most 8 files come back
    ;;
  latent)
    shift
    CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 timeout 440 python3 results/carracing/latent_mode_eval.py "$OUT" "$@" \
      --jobs 16 2>&1 | tr '\r' '\n' | grep -av episode
    ;;
  *)
    echo "usage: $0 bench|start|wait [seconds]|report|peer|short|eval DIR NAME|latent DIR..." >&2; exit 2 ;;
esac
