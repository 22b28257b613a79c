"""Experiments on the reward, not on the algorithm: train a CarRacing run with a shaped reward, then evaluate it
on the unchanged env.

    python results/carracing/reward_shaping.py RUN_LOGDIR --steps 90000 [--shaping missed_tile] [--penalty 10]
    python results/carracing/reward_shaping.py NEW_LOGDIR --preset carracing_cpu_80k --seed 0 [--shaping off_road]
    python results/carracing/reward_shaping.py RUN_LOGDIR --check 10 [--shaping S] [--penalty P]

Why: a CarRacing-v3 lap ends only once every tile is touched (see failure_modes.py), so a lap that runs wide past one
tile runs on to the time limit and loses about 45 points, while the agent only ever sees that tile's own 3 to 4
points go missing (whether the lap will end depends on tiles hundreds of steps back, which look the same touched or
not). Two shapings (`--shaping`):
- `missed_tile` (`MissedTilePenalty`, the default) makes that cost visible when it happens: it tracks the car's
  progress round the track and takes `--penalty` (10) off the reward for every tile left untouched behind it (and
  gives it back should the car return to touch it);
- `off_road` (`OffRoadPenalty`) charges the cause instead, in a form the frame shows: `--penalty` (1) times the
  fraction of the four wheels that touch no road tile, after every policy step.
The run in RUN_LOGDIR (a copy: it is resumed in place) continues to `--steps` with the shaped reward, for training
and for its 5-episode evaluations; evaluate the result on the env as it is, with report.py. With `--preset P` (and a
logdir that holds no run) a new run of preset P trains with it from its first step; `--steps` then ends this sitting
early (resume it later without `--preset`, with the same `--shaping` and `--penalty`).

Measured (results/carracing-cpu/README.md): 10k steps of `missed_tile` from an 80k agent changed nothing (856.5
against 862.1); from the first step of a run it gave fewer missed-tile laps but a worse driver (714.8), with three
times as many laps driven the wrong way after a spin: the penalty charges only forward progress, so a car that
turns round escapes it, and the world model predicts it poorly (a missed tile looks like a touched one).
`off_road` from the first step was learned by the world model (reward head −0.89 on the penalised steps, real
−1.13) and cut the missed-tile laps from 55 to 19, but the driver was worse again (740.8): 26 laps spun and drove
on the wrong way, against 7.

`--check N` asks whether a run's world model learned the shaping: it drives N greedy episodes (env seeds 777000
and up) with the shaped reward and prints the mean real reward and the mean of the reward head's prediction on
the steps that were penalised (the reward below minus half the penalty), and the head's mean on the other steps.
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np
from value_calibration import drive

from dreamer_tutorial.config import Config
from dreamer_tutorial.train import env_from_config, has_checkpoint, load_agent, resume_config, train

BEHIND = 3  # a tile counts as missed once the car's progress is this many tiles past it
AHEAD = 10  # progress follows a newly touched tile at most this far ahead (a touch beyond: a jump, not progress)


class MissedTilePenalty(gym.Wrapper):
    """Subtracts `penalty` from the reward for each tile the car has driven past untouched (CarRacing-v3 envs)."""

    def __init__(self, env: gym.Env, penalty: float):
        super().__init__(env)
        self.penalty = penalty

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.front, self.missed = self._progress(1), 0  # the car starts on tiles 0 and 1
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.front = self._progress(self.front)
        road = self.env.unwrapped.road
        missed = sum(not tile.road_visited for tile in road[: max(self.front - BEHIND + 1, 0)])
        reward -= self.penalty * (missed - self.missed)
        self.missed = missed
        return obs, reward, terminated, truncated, info

    def _progress(self, front: int) -> int:
        """The farthest touched tile reached going forward: it moves to a touched tile up to AHEAD tiles ahead."""
        road = self.env.unwrapped.road
        for i in range(min(front + AHEAD, len(road) - 1), front, -1):
            if road[i].road_visited:
                return i
        return front


class OffRoadPenalty(gym.Wrapper):
    """Subtracts `penalty` times the fraction of the car's four wheels that touch no road tile after each step
    (CarRacing-v3 envs): a cost the frame shows (the car over the grass), unlike a missed tile."""

    def __init__(self, env: gym.Env, penalty: float):
        super().__init__(env)
        self.penalty = penalty

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        wheels = self.env.unwrapped.car.wheels
        reward -= self.penalty * sum(not wheel.tiles for wheel in wheels) / len(wheels)
        return obs, reward, terminated, truncated, info


def check_reward_head(logdir: str, episodes: int, shaping: type[gym.Wrapper], penalty: float) -> str:
    """The reward head's prediction on penalised steps (those whose reward fell by more than half the penalty)
    against the real penalised reward, over greedy episodes with the penalty."""
    agent, config = load_agent(logdir)
    penalised, predicted, other = [], [], []
    for seed in range(777_000, 777_000 + episodes):
        e = drive(agent, config, seed, env=shaping(env_from_config(config), penalty))
        rewards = e["rewards"][:-1]  # r_1 .. r_{T-1}, beside the head's predictions at s_1 .. s_{T-1}
        hit = rewards < -penalty / 2
        penalised += rewards[hit].tolist()
        predicted += e["predicted"][hit].tolist()
        other += e["predicted"][~hit].tolist()
    return (f"{len(penalised)} penalised steps in {episodes} episodes: real reward {np.mean(penalised):.2f}, reward "
            f"head {np.mean(predicted):.2f}; other steps: reward head {np.mean(other):.2f}")


SHAPINGS = {"missed_tile": (MissedTilePenalty, 10.0), "off_road": (OffRoadPenalty, 1.0)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", help="a copy of a run's logdir (it is resumed in place), or a new one with --preset")
    parser.add_argument("--preset", help="start a new run of this preset in logdir, with the penalty from step 0")
    parser.add_argument("--seed", type=int, default=0, help="with --preset: the new run's seed")
    parser.add_argument("--steps", type=int, help="continue to this many policy steps")
    parser.add_argument("--check", type=int, metavar="N", help="only check the reward head over N episodes")
    parser.add_argument("--shaping", choices=sorted(SHAPINGS), default="missed_tile",
                        help="missed_tile: the penalty per tile driven past untouched; off_road: the penalty per "
                             "policy step with all four wheels off the road (a quarter per wheel)")
    parser.add_argument("--penalty", type=float, help="its size (default: 10 for missed_tile, 1 for off_road)")
    parser.add_argument("--lr_drop", type=float, default=None, help="factor on every learning rate (default: saved)")
    args = parser.parse_args(argv)
    shaping, default_penalty = SHAPINGS[args.shaping]
    penalty = default_penalty if args.penalty is None else args.penalty
    if not args.check and args.steps is None and args.preset is None:
        parser.error("expected --steps N (continue the run), --preset P (start one) or --check N (check its reward "
                     "head)")
    if args.preset is not None and has_checkpoint(args.logdir):
        parser.error(f"{args.logdir} already holds a run: continue it without --preset")
    overrides = {} if args.steps is None else {"steps": args.steps}
    if args.lr_drop is not None:
        overrides["lr_drop"] = args.lr_drop
    try:  # no run in logdir, an unknown preset, a damaged checkpoint: one line, as python -m dreamer_tutorial.train
        if args.check:
            print(check_reward_head(args.logdir, args.check, shaping, penalty))
            return 0
        if args.preset is not None:
            config = Config.preset(args.preset, seed=args.seed, logdir=args.logdir, **overrides)
        else:
            config = resume_config(args.logdir, overrides)
    except ValueError as error:
        parser.error(str(error))
    if not config.env.startswith("CarRacing"):
        parser.error(f"expected a CarRacing run, got env {config.env!r}")
    try:
        result = train(config, env_fn=lambda: shaping(env_from_config(config), penalty),
                       resume=args.preset is None, progress=False)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"eval return (with the penalty) {result['eval_return']:.1f} ± {result['eval_std']:.1f} after "
          f"{result['steps']} steps; logs in {result['logdir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
