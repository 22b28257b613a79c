"""Benchmark: world-model updates and full Dreamer train steps per second for the presets.

    python -m dreamer_tutorial.bench                      # debug, small, paper on the default device
    python -m dreamer_tutorial.bench --presets paper --device cuda --precision bf16 --updates 20

Batches come from a replay buffer filled with random frames (the cost of an update does not depend on the
pixels). Prints one line per preset with the world-model parameter count, seconds per world-model update,
seconds per full train_step (world model + imagination + actor + critic) and the corresponding updates/s.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from .agent import Dreamer
from .config import Config
from .networks import count_parameters
from .replay import SequenceReplay


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_preset(preset: str, updates: int, discrete: bool = True, **overrides) -> dict:
    config = Config.preset(preset, **overrides)
    act_space = gym.spaces.Discrete(6) if discrete else gym.spaces.Box(-1, 1, (3,), np.float32)
    agent = Dreamer(config, gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), act_space)
    rng = np.random.default_rng(0)
    length = config.batch_length
    replay = SequenceReplay(4 * length, (64, 64, 3), agent.action_dim)
    for i in range(4 * length):
        action = np.eye(agent.action_dim)[i % agent.action_dim] if discrete else rng.uniform(-1, 1, 3)
        replay.add(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), action, rng.normal(), i % 100 == 0, False)

    def sample():
        return replay.sample(config.batch_size, length, agent.device)

    def world_model_update():
        loss, _, _ = agent.world_model.loss(agent._check_batch(sample()))
        agent.model_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.model_opt.step()

    results = {"preset": preset, "wm_params_M": count_parameters(agent.world_model) / 1e6}
    for name, step in (("world_model", world_model_update), ("train_step", lambda: agent.train_step(sample()))):
        with agent._autocast():
            step()  # warm-up (allocations, kernel selection, compilation)
            _sync(agent.device)
            start = time.perf_counter()
            for _ in range(updates):
                step()
            _sync(agent.device)
        results[f"{name}_s"] = (time.perf_counter() - start) / updates
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["debug", "small", "paper"], help="presets to time")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per preset (after one warm-up)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16 autocast on CUDA")
    parser.add_argument("--continuous", action="store_true", help="continuous actions (dynamics backprop)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}, "
          f"precision {args.precision}, {'continuous' if args.continuous else 'discrete'} actions")
    print(f"{'preset':10s} {'batch':>7s} {'WM params':>10s} {'WM update':>11s} {'train_step':>11s} {'updates/s':>10s}")
    for preset in args.presets:
        r = bench_preset(preset, args.updates, not args.continuous, device=args.device, precision=args.precision)
        c = Config.preset(preset)
        print(f"{preset:10s} {c.batch_size:>3d}x{c.batch_length:<3d} {r['wm_params_M']:>9.2f}M "
              f"{r['world_model_s']:>10.3f}s {r['train_step_s']:>10.3f}s {1 / r['train_step_s']:>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
