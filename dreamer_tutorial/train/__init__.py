"""The training loop: collect with the agent, learn from replay, evaluate, log, checkpoint, resume.
The command line (`__main__.py`):

    python -m dreamer_tutorial.train --preset carracing [--steps N] [--logdir D] [--seed S] [--resume]
                                     [--any_config_field VALUE ...]

Pseudocode (DreamerV2, Algorithm 1, with parallel environments):

    prefill the replay with random actions
    while step < steps:
        a_t ~ pi(a | posterior of the frames so far)      (every env of the vector env at once)
        x_{t+1}, r_{t+1} = envs.step(a_t); add to replay  (one row per env, see replay.py for the alignment)
        every train_every steps: agent.train_step(replay.sample(B, T))
        every eval_every steps: greedy episodes on fresh env seeds, a video, an open-loop prediction image
        every checkpoint_minutes: model, optimisers, replay, counters and RNG states -> checkpoints/latest.pt

A logdir holds metrics.csv (a `step` column of policy steps summed over envs, then one column per metric; rows
are appended across resumes), TensorBoard event files with the same names, checkpoints/ and videos/.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ..agent import Dreamer
from ..config import Config
from ..envs import make_env
from ..replay import SequenceReplay

CHECKPOINT = "latest.pt"


# --- environments ----------------------------------------------------------------------------------------------
def _env_builder(config: Config, env_fn: Callable[[], gym.Env] | None) -> Callable[[], gym.Env]:
    if env_fn is not None:
        return env_fn
    return lambda: make_env(config.env, config.image_size, config.action_repeat, config.time_limit)


def make_vector_env(config: Config, env_fn: Callable[[], gym.Env] | None = None, num_envs: int | None = None):
    """`num_envs` copies of the env, stepped together. Worker processes (AsyncVectorEnv) pay off when one env
    step costs more than the inter-process round trip (CarRacing's Box2D physics and rendering); the toy env
    runs in-process. Autoreset mode NEXT_STEP: the step after an episode's last one returns the reset frame,
    which is exactly one replay row with is_first = True."""
    n = num_envs or config.num_envs
    fns = [_env_builder(config, env_fn)] * n
    mode = gym.vector.AutoresetMode.NEXT_STEP
    if n > 1 and config.env.startswith("CarRacing") and env_fn is None:
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


def _to_env_actions(actions: np.ndarray, discrete: bool) -> np.ndarray:
    """The agent's actions (one-hot for discrete) in the env's format (indices for discrete)."""
    return actions.argmax(-1) if discrete else actions


def _random_actions(rng: np.random.Generator, n: int, action_dim: int, discrete: bool) -> np.ndarray:
    if discrete:
        return np.eye(action_dim, dtype=np.float32)[rng.integers(0, action_dim, n)]
    return rng.uniform(-1, 1, (n, action_dim)).astype(np.float32)


# --- evaluation ------------------------------------------------------------------------------------------------
def evaluate(agent: Dreamer, env: gym.Env | gym.vector.VectorEnv, episodes: int, seed: int | None = None,
             record: bool = False) -> dict:
    """Run `episodes` full episodes with the greedy policy (the actor's mode).

    `env` is a single env or a vector env (its sub-envs then run episodes in parallel; sub-env i runs episodes
    i, i + n, ... so short episodes are not favoured). Returns mean, std, min, max and per-episode `returns`;
    with `record`, also `frames` (T, H, W, 3) of the first episode.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    envs = env if isinstance(env, gym.vector.VectorEnv) else gym.vector.SyncVectorEnv(
        [lambda: env], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    n = envs.num_envs
    quota = np.array([len(range(i, episodes, n)) for i in range(n)])
    returns: list[list[float]] = [[] for _ in range(n)]
    running, frames = np.zeros(n), []
    obs, _ = envs.reset(seed=seed)
    state, is_first = None, np.ones(n, bool)
    was_training = agent.training
    agent.eval()
    while any(len(r) < q for r, q in zip(returns, quota)):
        if record and not returns[0]:
            frames.append(obs[0])
        actions, state = agent.policy(obs, state, training=False, is_first=is_first)
        obs, reward, terminated, truncated, _ = envs.step(_to_env_actions(actions, agent.discrete))
        running += np.where(is_first, 0.0, reward)  # a reset row's reward is not part of any episode
        done = (terminated | truncated) & ~is_first
        for i in np.flatnonzero(done):
            if len(returns[i]) < quota[i]:
                returns[i].append(float(running[i]))
            running[i] = 0.0
        is_first = done
    agent.train(was_training)
    if envs is not env:
        envs.close()
    flat = np.array([r for per_env in returns for r in per_env])
    result = {"mean": float(flat.mean()), "std": float(flat.std()), "min": float(flat.min()),
              "max": float(flat.max()), "returns": flat.tolist()}
    if record:
        result["frames"] = np.stack(frames)
    return result


# --- logging ---------------------------------------------------------------------------------------------------
class Logger:
    """The same scalars to metrics.csv and TensorBoard. The CSV gains a column when a new metric appears (the
    file is rewritten with the wider header), and is appended to across resumes."""

    def __init__(self, logdir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.path = logdir / "metrics.csv"
        self.header: list[str] = ["step"]
        if self.path.exists():
            with open(self.path, newline="") as f:
                self.header = next(csv.reader(f), ["step"])
        self.tb = SummaryWriter(str(logdir))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self.header]
        if new or not self.path.exists():
            old_rows = []
            if self.path.exists():
                with open(self.path, newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self.header += new
            self._rewrite(old_rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.header).writerow(row)
        for key, value in row.items():
            if key != "step":
                self.tb.add_scalar(key, value, step)
        self.tb.flush()

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def close(self) -> None:
        self.tb.close()


# --- checkpoints -----------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: write a temporary file, then rename it over the old checkpoint. A crash while writing leaves the
    previous checkpoint untouched (and at worst a stale .tmp file, overwritten next time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_agent(logdir: str | Path, device: str | None = None) -> tuple[Dreamer, Config]:
    """The agent of a finished (or interrupted) run, from `logdir/checkpoints/latest.pt`, ready to evaluate."""
    state = load_checkpoint(Path(logdir) / "checkpoints" / CHECKPOINT)
    config = Config(**state["config"])
    if device is not None:
        config = config.replace(device=device)
    env = make_env(config.env, config.image_size, config.action_repeat, config.time_limit)
    agent = Dreamer(config, env.observation_space, env.action_space)
    env.close()
    agent.load_checkpoint_state(state["agent"])
    return agent, config


# --- the loop --------------------------------------------------------------------------------------------------
class _Trainer:
    def __init__(self, config: Config, env_fn: Callable[[], gym.Env] | None, resume: bool, progress: bool):
        config.validate()
        self.config = c = config
        self.logdir = Path(c.logdir)
        self.ckpt_path = self.logdir / "checkpoints" / CHECKPOINT
        if not resume and self.ckpt_path.exists():
            raise ValueError(f"{self.logdir} already holds a run; pass resume=True (--resume) to continue it or "
                             f"choose another logdir")
        torch.manual_seed(c.seed)
        self.rng = np.random.default_rng(c.seed)
        self.envs = make_vector_env(c, env_fn)
        # Evaluation episodes use other seeds than training (fresh CarRacing tracks).
        self.eval_envs = make_vector_env(c, env_fn, min(c.num_envs, c.eval_episodes))
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        self.agent = Dreamer(c, obs_space, act_space)
        self.replay = SequenceReplay(c.replay_capacity, obs_space.shape, self.agent.action_dim, c.num_envs, c.seed)
        self.step = self.updates = self.episodes = 0
        self.last_log = self.last_eval = 0
        self.run_index = 0  # how many times this run was started (resumes get new env seeds)
        self.best_eval = -np.inf
        self.last_eval_result: dict | None = None
        if resume and self.ckpt_path.exists():
            self._restore(load_checkpoint(self.ckpt_path))
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.logger = Logger(self.logdir)
        self.progress = progress
        self.episode_returns: list[float] = []
        self.train_metrics: dict[str, list[float]] = {}

    # checkpoint contents: everything needed to continue as if never stopped (except env internals: episodes
    # in flight restart, which the replay marks with is_first)
    def _state(self) -> dict:
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"agent": self.agent.checkpoint_state(), "replay": self.replay.state_dict(),
                "counters": {"step": self.step, "updates": self.updates, "episodes": self.episodes,
                             "last_log": self.last_log, "last_eval": self.last_eval, "run_index": self.run_index},
                "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng, "numpy": self.rng.bit_generator.state},
                "config": self.config.to_dict()}

    def _restore(self, state: dict) -> None:
        saved = Config(**state["config"])
        if (saved.num_envs, saved.env, saved.replay_capacity) != (self.config.num_envs, self.config.env,
                                                                  self.config.replay_capacity):
            raise ValueError("cannot resume: the checkpoint was written with a different env, num_envs or "
                             "replay_capacity")
        self.agent.load_checkpoint_state(state["agent"])
        self.replay.load_state_dict(state["replay"])
        counters = state["counters"]
        self.step, self.updates, self.episodes = counters["step"], counters["updates"], counters["episodes"]
        self.last_log, self.last_eval = counters["last_log"], counters["last_eval"]
        self.run_index = counters["run_index"] + 1
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.rng.bit_generator.state = state["rng"]["numpy"]

    def checkpoint(self) -> None:
        save_checkpoint(self.ckpt_path, self._state())
        self.last_checkpoint = time.monotonic()

    def run(self) -> dict:
        from tqdm.auto import tqdm

        c, agent = self.config, self.agent
        start_time, start_step, start_updates = time.monotonic(), self.step, self.updates
        self.last_checkpoint = time.monotonic()
        n = c.num_envs
        obs, _ = self.envs.reset(seed=c.seed + 1000 * self.run_index)
        self.eval_envs.reset(seed=c.seed + 1_000_000 + 1000 * self.run_index)
        zeros = np.zeros((n, agent.action_dim), np.float32)
        self.replay.add(obs, zeros, np.zeros(n), np.ones(n, bool), np.zeros(n, bool))
        is_first, running, policy_state = np.ones(n, bool), np.zeros(n), None
        bar = tqdm(total=c.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        try:
            while self.step < c.steps:
                if self.step < c.prefill:
                    actions = _random_actions(self.rng, n, agent.action_dim, agent.discrete)
                else:
                    actions, policy_state = agent.policy(obs, policy_state, training=True, is_first=is_first)
                obs, reward, terminated, truncated, _ = self.envs.step(_to_env_actions(actions, agent.discrete))
                # After a finished episode the vector env returns the reset frame: a first row with no action.
                self.replay.add(obs, np.where(is_first[:, None], zeros, actions), np.where(is_first, 0.0, reward),
                                is_first, terminated & ~is_first)
                running += np.where(is_first, 0.0, reward)
                done = (terminated | truncated) & ~is_first
                for i in np.flatnonzero(done):
                    self.episode_returns.append(float(running[i]))
                    self.episodes += 1
                running[done] = 0.0
                is_first = done
                self.step += n
                bar.update(n)
                self._train_due()
                if self.step - self.last_log >= c.log_every:
                    self._log(bar, start_time, start_step, start_updates)
                if self.step - self.last_eval >= c.eval_every and self.step < c.steps:
                    self._evaluate()
                if time.monotonic() - self.last_checkpoint >= 60 * c.checkpoint_minutes:
                    self.checkpoint()
            result = self._evaluate()
            self._log(bar, start_time, start_step, start_updates)
            self.checkpoint()
        except KeyboardInterrupt:
            # Ctrl-C (or a notebook's stop button): keep what was learned, `resume=True` continues from here.
            self.checkpoint()
            raise
        finally:
            bar.close()
            self.envs.close()
            self.eval_envs.close()
            self.logger.close()
        return {"eval_return": result["mean"], "eval_std": result["std"], "eval_returns": result["returns"],
                "steps": self.step, "updates": self.updates, "episodes": self.episodes,
                "nonfinite_updates": agent.nonfinite_updates, "logdir": str(self.logdir)}

    def _train_due(self) -> None:
        c = self.config
        due = (self.step - c.prefill) // c.train_every if self.step >= c.prefill else 0
        while self.updates < due and self.replay.can_sample(c.batch_length):
            batch = self.replay.sample(c.batch_size, c.batch_length, self.agent.device)
            for key, value in self.agent.train_step(batch).items():
                self.train_metrics.setdefault(key, []).append(value)
            self.updates += 1

    def _log(self, bar, start_time: float, start_step: int, start_updates: int) -> None:
        elapsed = max(time.monotonic() - start_time, 1e-9)
        metrics = {k: float(np.mean(v)) for k, v in self.train_metrics.items()}
        metrics["nonfinite_updates"] = float(self.agent.nonfinite_updates)
        if self.episode_returns:
            metrics["episode_return"] = float(np.mean(self.episode_returns))
        metrics.update({"updates": self.updates, "episodes": self.episodes,
                        "env_steps_per_s": (self.step - start_step) / elapsed,
                        "updates_per_s": (self.updates - start_updates) / elapsed})
        self.logger.write(self.step, metrics)
        shown = {k: metrics[k] for k in ("episode_return", "model_loss", "actor_loss") if k in metrics}
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        self.train_metrics, self.episode_returns, self.last_log = {}, [], self.step

    def _evaluate(self) -> dict:
        c = self.config
        record = c.video_every_eval
        result = evaluate(self.agent, self.eval_envs, c.eval_episodes, record=record)
        self.last_eval = self.step
        self.logger.write(self.step, {"eval_return": result["mean"], "eval_std": result["std"]})
        if record:
            from ..viz import plot_openloop, save_video

            videos = self.logdir / "videos"
            save_video(result["frames"], videos / f"policy_{self.step:08d}.mp4")
            if self.replay.can_sample(c.batch_length):
                batch = self.replay.sample(4, c.batch_length, self.agent.device)
                with torch.no_grad():
                    pred = self.agent.world_model.open_loop(batch, context=min(5, c.batch_length - 1))
                fig = plot_openloop(pred["truth"], pred["model"], context=min(5, c.batch_length - 1),
                                    every=max(1, c.batch_length // 16))
                fig.savefig(videos / f"openloop_{self.step:08d}.png", dpi=80)
                import matplotlib.pyplot as plt

                plt.close(fig)
        return result


def train(config: Config, env_fn: Callable[[], gym.Env] | None = None, resume: bool = False,
          progress: bool = True) -> dict:
    """Train a Dreamer agent as configured; returns final metrics including `eval_return` (mean greedy return
    over `config.eval_episodes` episodes on env seeds never used for training).

    `env_fn`, when given, builds the environment (one call per parallel env) instead of `config.env`.
    `resume=True` continues the run in `config.logdir` from its latest checkpoint (same step counter, replay,
    optimiser states and RNG states); starting a new run in a logdir that holds one is an error.
    """
    return _Trainer(config, env_fn, resume, progress).run()
