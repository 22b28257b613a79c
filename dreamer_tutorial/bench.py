"""Benchmark: world-model updates and full Dreamer train steps per second for the presets.

    python -m dreamer_tutorial.bench                      # debug, small, paper on the default device
    python -m dreamer_tutorial.bench --presets paper --device cuda --precision bf16 --updates 20
    python -m dreamer_tutorial.bench --collect --preset carracing   # env steps/s of collection, with the policy

Batches come from a replay buffer filled with random frames (the cost of an update does not depend on the
pixels). Prints one line per preset with the world-model parameter count, seconds per world-model update,
seconds per full train_step (world model + imagination + actor + critic), and both as updates per second.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from .agent import Dreamer
from .config import Config
from .networks import count_parameters
from .replay import SequenceReplay


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, to say where a figure was measured: /proc/cpuinfo's first "model name" (Linux), else
    platform.processor() or platform.machine(), else "unknown model"."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:  # absent or unreadable: run_full.py's hardware() fell back here before it called this
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return (names[0] if names else platform.processor() or platform.machine()) or "unknown model"


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


def bench_collection(preset: str, num_envs: int, steps: int, policy: bool, device: str = "auto") -> float:
    """Policy steps per second (summed over envs) of collection with the preset's vector env, with random actions
    or with the agent's policy (encoder + RSSM step + actor per step, as in training)."""
    from .train import make_vector_env

    config = Config.preset(preset, num_envs=num_envs, device=device)
    envs = make_vector_env(config)
    agent = Dreamer(config, envs.single_observation_space, envs.single_action_space) if policy else None
    obs, _ = envs.reset(seed=0)
    state, is_first = None, np.ones(num_envs, bool)
    start = None
    for i in range(steps // num_envs + 5):
        if i == 5:  # warm-up: worker start, first allocations
            start = time.perf_counter()
        if agent is None:
            actions = envs.action_space.sample()
        else:
            actions, state = agent.policy(obs, state, training=True, is_first=is_first)
            actions = actions.argmax(-1) if agent.discrete else actions
        obs, _, terminated, truncated, _ = envs.step(actions)
        is_first = terminated | truncated
    elapsed = time.perf_counter() - start
    envs.close()
    return (steps // num_envs) * num_envs / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["debug", "small", "paper"], help="presets to time")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per preset (after one warm-up)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16 autocast on CUDA")
    parser.add_argument("--continuous", action="store_true", help="continuous actions (dynamics backprop)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks (config.compile)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--collect", action="store_true", help="time collection (env steps/s) instead of updates")
    parser.add_argument("--num_envs", type=int, nargs="+", default=[1, 2, 4], help="--collect: vector env sizes")
    parser.add_argument("--steps", type=int, default=400, help="--collect: policy steps to time per setting")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.collect:
        for preset in args.presets:
            for n in args.num_envs:
                random = bench_collection(preset, n, args.steps, policy=False, device=args.device)
                agent = bench_collection(preset, n, args.steps, policy=True, device=args.device)
                print(f"{preset:13s} {n:3d} envs: {random:7.1f} policy steps/s with random actions, "
                      f"{agent:7.1f} with the agent's policy", flush=True)
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}, "
          f"precision {args.precision}, {'continuous' if args.continuous else 'discrete'} actions"
          f"{', compiled' if args.compile else ''}")
    print(f"{'preset':13s} {'batch':>7s} {'WM params':>10s} {'WM update':>11s} {'WM upd/s':>9s} {'train_step':>11s} "
          f"{'updates/s':>10s}")
    for preset in args.presets:
        r = bench_preset(preset, args.updates, not args.continuous, device=args.device, precision=args.precision,
                         compile=args.compile)
        c = Config.preset(preset)
        print(f"{preset:13s} {c.batch_size:>3d}x{c.batch_length:<3d} {r['wm_params_M']:>9.2f}M "
              f"{r['world_model_s']:>10.3f}s {1 / r['world_model_s']:>9.2f} {r['train_step_s']:>10.3f}s "
              f"{1 / r['train_step_s']:>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
