"""Does torch.compile speed up a full update on the CPU? Times `Dreamer.train_step` eager and compiled.

    python benchmarks/compile_cpu.py --preset small --threads 2 --mode eager
    python benchmarks/compile_cpu.py --preset small --threads 2 --mode nets    # config.compile: conv nets, heads, actor
    python benchmarks/compile_cpu.py --preset small --threads 2 --mode steps   # the RSSM's step functions
    python benchmarks/compile_cpu.py --preset small --threads 2 --mode both

`nets` is the package's `compile=True` (the RSSM's time loop stays eager). `steps` compiles `RSSM.img_step` and
`RSSM.obs_step`, the bodies of the observe and imagination loops, where a 2M-parameter update spends much of its
time in many small kernels; the package does not do this (yet): this script is the experiment that decides it.
Run each mode in its own process (compiled code is cached per process), modes interleaved, on a quiet machine.
Prints the compile time (the first update) and the mean of the timed updates.
"""

from __future__ import annotations

import argparse
import time

import torch

from dreamer_tutorial.bench import bench_preset
from dreamer_tutorial.rssm import RSSM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--mode", choices=["eager", "nets", "steps", "both"], default="eager")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode in ("steps", "both"):
        RSSM.img_step = torch.compile(RSSM.img_step)
        RSSM.obs_step = torch.compile(RSSM.obs_step)
    start = time.perf_counter()
    result = bench_preset(args.preset, args.updates, discrete=False, device="cpu",
                          compile=args.mode in ("nets", "both"))
    total = time.perf_counter() - start
    print(f"{args.preset} {args.mode:5s} {args.threads} threads: train_step {result['train_step_s']:.3f} s "
          f"(world model {result['world_model_s']:.3f} s), {total:.0f} s in all with compilation", flush=True)


if __name__ == "__main__":
    main()
