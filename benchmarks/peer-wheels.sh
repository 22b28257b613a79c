#!/usr/bin/env bash
# Download, for the GPU machine (Python 3.12, x86-64, torch and numpy already there), the wheels that
# benchmarks/sheeprl_dreamer_v2.py needs: sheeprl 0.8.4 and what its dreamer_v2 imports (~8 MB; OpenCV is left
# out: the benchmark stubs it). They go into .whl-peer/ (git-ignored); name it in `carry` next to .whl, and run
#   bash results/carracing/gpu_run.sh peer
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .whl-peer
plat=(--only-binary=:all: --python-version 3.12 --implementation cp)
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux1_x86_64; do plat+=(--platform "$p"); done
python3 -m pip download -q --no-deps "${plat[@]}" -d .whl-peer \
  sheeprl==0.8.4 hydra-core==1.3.8 omegaconf==2.3.1 lightning==2.6.6 \
  lightning-utilities==0.15.3 torchmetrics==1.9.0 python-dotenv==1.2.4 rich==15.0.0 pygments==2.21.0 \
  markdown-it-py==4.3.0 mdurl==0.1.2 tqdm==4.70.1 pyyaml==6.0.4 fsspec==2026.9.0 cloudpickle==3.1.3 \
  2>&1 | grep -v 'is ignored' || true
# omegaconf pins antlr4 4.9.3, published only as a source archive: build its (pure-Python) wheel here
python3 -m pip wheel -q --no-deps -w .whl-peer antlr4-python3-runtime==4.9.3 2>&1 | grep -v 'is ignored' || true
ls .whl-peer | sed 's/^/  /'
du -sh .whl-peer
