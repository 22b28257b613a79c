"""The peer figure for results/throughput.md: one sheeprl dreamer_v2 gradient step at this project's sizes.

Times sheeprl's own `train` (world model, imagination, actor and critic updates) on random batches, the
same measurement as `python -m dreamer_tutorial.bench` (which also pays for sampling from its replay; this
script builds the batch outside the timer). Sizes match the presets here: `paper` (19.97M world-model
parameters, batch 16x50) and `small` (2.14M, batch 8x32); sheeprl's discount head is enabled
(`use_continues`) because ours always has one. Discrete actions (6), as `bench` by default.

Run it in its own environment (sheeprl pins its own dependencies):

    python -m venv /tmp/shv && /tmp/shv/bin/pip install torch==2.13.0 && /tmp/shv/bin/pip install sheeprl==0.8.4
    /tmp/shv/bin/python benchmarks/sheeprl_dreamer_v2.py --size paper --threads 2 --updates 5
    /tmp/shv/bin/python benchmarks/sheeprl_dreamer_v2.py --size paper --device cuda --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

import gymnasium as gym
import numpy as np
import torch

SIZES = {
    "paper": [],  # sheeprl's dreamer_v2 defaults are the paper's sizes
    "small": ["algo.world_model.encoder.cnn_channels_multiplier=16",
              "algo.world_model.recurrent_model.recurrent_state_size=200",
              "algo.world_model.transition_model.hidden_size=200",
              "algo.world_model.representation_model.hidden_size=200",
              "algo.world_model.stochastic_size=16", "algo.world_model.discrete_size=16",
              "algo.dense_units=200", "algo.mlp_layers=2"],
}
BATCH = {"paper": (16, 50), "small": (8, 32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--updates", type=int, default=5, help="timed updates (after one warm-up)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="32-true", help="Fabric precision: 32-true or bf16-mixed")
    args = parser.parse_args()

    try:
        import cv2  # noqa: F401
    except ImportError:  # sheeprl.utils.env imports OpenCV for image wrappers this benchmark never calls; the
        sys.modules["cv2"] = types.ModuleType("cv2")  # GPU bundle leaves the 60 MB wheel out
    import sheeprl
    from hydra import compose, initialize_config_dir
    from lightning.fabric import Fabric
    from omegaconf import OmegaConf
    from sheeprl.algos.dreamer_v2.agent import build_agent
    from sheeprl.algos.dreamer_v2.dreamer_v2 import train
    from sheeprl.algos.dreamer_v2.utils import build_optimizer
    from sheeprl.utils.utils import dotdict

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.distributions.Distribution.set_default_validate_args(False)  # as sheeprl's own runs
    batch_size, length = BATCH[args.size]
    overrides = ["exp=dreamer_v2", "env=dummy", "env.id=discrete_dummy", f"fabric.accelerator={args.device}",
                 "algo.cnn_keys.encoder=[rgb]", "algo.mlp_keys.encoder=[]", "algo.world_model.use_continues=True",
                 "metric.log_level=0", f"algo.per_rank_batch_size={batch_size}",
                 f"algo.per_rank_sequence_length={length}"] + SIZES[args.size]
    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(sheeprl.__file__), "configs"),
                               version_base="1.3"):
        cfg = dotdict(OmegaConf.to_container(compose("config", overrides=overrides), resolve=True))
    fabric = Fabric(accelerator=args.device, devices=1, precision=args.precision)
    fabric.launch()
    obs_space = gym.spaces.Dict({"rgb": gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)})
    actions_dim = (6,)
    world_model, actor, critic, target_critic, _ = build_agent(fabric, actions_dim, False, cfg, obs_space)
    optimizers = fabric.setup_optimizers(
        build_optimizer(cfg.algo.world_model.optimizer, world_model.parameters()),
        build_optimizer(cfg.algo.actor.optimizer, actor.parameters()),
        build_optimizer(cfg.algo.critic.optimizer, critic.parameters()))

    def batch() -> dict[str, torch.Tensor]:
        shape = (length, batch_size)
        data = {"rgb": torch.randint(0, 256, (*shape, 3, 64, 64)).float(),
                "actions": torch.nn.functional.one_hot(torch.randint(0, 6, shape), 6).float(),
                "rewards": torch.randn(*shape, 1), "terminated": torch.zeros(*shape, 1),
                "truncated": torch.zeros(*shape, 1), "is_first": torch.zeros(*shape, 1)}
        return {k: v.to(fabric.device) for k, v in data.items()}

    def step(data: dict[str, torch.Tensor]) -> None:
        train(fabric, world_model, actor, critic, target_critic, *optimizers, data, None, cfg, actions_dim)
        if args.device == "cuda":
            torch.cuda.synchronize()

    step(batch())  # warm-up
    times = []
    for _ in range(args.updates):
        data = batch()
        start = time.perf_counter()
        step(data)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in world_model.parameters()) / 1e6
    print(f"sheeprl {sheeprl.__version__} dreamer_v2 {args.size}: batch {batch_size}x{length}, WM params "
          f"{params:.2f}M, {args.device} {args.precision}, {torch.get_num_threads()} threads: train step "
          f"{np.mean(times):.3f}s mean of {args.updates} (min {min(times):.3f}s), {1 / np.mean(times):.2f} updates/s")


if __name__ == "__main__":
    main()
