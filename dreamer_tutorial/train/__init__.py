"""The training loop: collect with the agent, learn from replay, evaluate, log, checkpoint, resume.
The command line (`__main__.py`):

    python -m dreamer_tutorial.train --preset carracing [--steps N] [--logdir D] [--seed S] [--resume]
                                     [--any_config_field VALUE ...]

Pseudocode (the loop of DreamerV1's Algorithm 1, Hafner et al. 2020, which DreamerV2 keeps; DreamerV2's own
Algorithm 1 is the straight-through gradient snippet), with parallel environments:

    prefill the replay with random actions (the policy's latent still follows the frames)
    while step < steps:
        a_t ~ pi(a | posterior of the frames so far)      (every env of the vector env at once)
        x_{t+1}, r_{t+1} = envs.step(a_t); add to replay  (one row per env, see replay.py for the alignment)
        every train_every steps: agent.train_step(replay.sample(B, T))
                                 (from lr_drop_step on, at lr_drop times every learning rate)
        every eval_every steps: greedy episodes on fresh env seeds, a video, an open-loop prediction image;
                                the agent, when its evaluation is the best so far -> checkpoints/best.pt
                                (with keep_eval_agents, always -> checkpoints/eval_<step>.pt)
        every checkpoint_minutes: model, optimisers, replay, counters, RNG states and the config
                                  -> checkpoints/latest.pt (the one before is kept as previous.pt)

Acting alignment. With gymnasium's NEXT_STEP autoreset, the step after an episode's last frame returns the
next episode's reset frame (with reward 0; the action sent on the terminal frame is discarded). So a frame is a
reset frame exactly when it came from `reset()` or when the previous step of its env ended an episode; on those
frames, and only those, the policy's latent is reset and the replay row holds is_first = True, a zero action and
a zero reward. Every other row holds the action that led to its frame and that step's reward.

A logdir holds metrics.csv (a `step` column of policy steps summed over envs, then one column per metric, among
them `minutes`: the wall clock of training so far, summed over the sittings of a resumed run; rows
are appended across resumes, and rows written after the checkpoint a run resumes from are dropped, so a crash
never leaves duplicates), TensorBoard event files with the same names (purged the same way), checkpoints/ and
videos/.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from .. import __version__
from ..agent import Dreamer
from ..config import Config
from ..envs import make_env
from ..replay import SequenceReplay

CHECKPOINT = "latest.pt"
PREVIOUS = "previous.pt"
BEST = "best.pt"  # the agent of the best evaluation so far (weights, optimisers, config; no replay)
KEPT = "eval_{step:08d}.pt"  # with keep_eval_agents: the agent of the evaluation at that step (as best.pt)
# Bumped whenever a checkpoint of an older package version would load into different behaviour (1: up to
# 0.1.0; 2: truncated-Normal actor, authors' actor_grad_mix and intrinsic-reward scale).
CHECKPOINT_FORMAT = 2
# Config fields that fix the shapes of the networks and the replay: a resumed run must keep them.
_STRUCTURAL = ("env", "image_size", "num_envs", "replay_capacity", "cnn_depth", "deter", "hidden", "stoch",
               "classes", "mlp_units", "mlp_layers", "intrinsic", "ensemble_size", "expl_behavior", "car_actions")


# --- environments ----------------------------------------------------------------------------------------------
def _env_builder(config: Config, env_fn: Callable[[], gym.Env] | None) -> Callable[[], gym.Env]:
    if env_fn is not None:
        return env_fn
    return lambda: env_from_config(config)


def env_from_config(config: Config) -> gym.Env:
    """The env a run trains and evaluates on: `make_env` with the config's env, frame size, action repeat, time
    limit and CarRacing action mapping."""
    return make_env(config.env, config.image_size, config.action_repeat, config.time_limit,
                    car_actions=config.car_actions)


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
             record: bool = False, progress: bool = False, sample: bool = False, latent_mode: bool = False) -> dict:
    """Run `episodes` full episodes with the greedy policy (the actor's mode; with `sample`, actions drawn from it;
    with `latent_mode`, the posterior's most likely latent instead of a sample: `Dreamer.policy`).

    `env` is a single env or a vector env (its sub-envs then run episodes in parallel; sub-env i runs episodes
    i, i + n, ... so short episodes are not favoured). Returns mean, std, min, max and per-episode `returns`
    (whole episodes: every reward from the first step after a reset to the episode's end); with `record`, also
    `frames` (T + 1, H, W, 3) of the first episode, reset frame to last frame. `progress` shows a bar.
    """
    from tqdm.auto import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    envs = env if isinstance(env, gym.vector.VectorEnv) else gym.vector.SyncVectorEnv(
        [lambda: env], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    n = envs.num_envs
    quota = np.array([len(range(i, episodes, n)) for i in range(n)])
    returns: list[list[float]] = [[] for _ in range(n)]
    running = np.zeros(n)
    obs, _ = envs.reset(seed=seed)
    frames = [obs[0]] if record else []
    state, is_first, ended = None, np.ones(n, bool), np.zeros(n, bool)
    was_training = agent.training
    agent.eval()
    bar = tqdm(total=episodes, disable=not progress, unit="episode", dynamic_ncols=True)
    # the options only when asked: the lessons' own agents need not know them
    extra = ({"sample": True} if sample else {}) | ({"latent_mode": True} if latent_mode else {})
    while any(len(r) < q for r, q in zip(returns, quota)):
        actions, state = agent.policy(obs, state, training=False, is_first=is_first, **extra)
        obs, reward, terminated, truncated, _ = envs.step(_to_env_actions(actions, agent.discrete))
        is_first, ended = _next_flags(ended, terminated, truncated)
        if record and not returns[0]:
            frames.append(obs[0])
        running += np.where(is_first, 0.0, reward)  # a reset frame's reward belongs to no episode
        for i in np.flatnonzero(ended):
            if len(returns[i]) < quota[i]:
                returns[i].append(float(running[i]))
                bar.update(1)
            running[i] = 0.0
    bar.close()
    agent.train(was_training)
    if envs is not env:
        envs.close()
    flat = np.array([r for per_env in returns for r in per_env])
    result = {"mean": float(flat.mean()), "std": float(flat.std()), "min": float(flat.min()),
              "max": float(flat.max()), "returns": flat.tolist()}
    if record:
        result["frames"] = np.stack(frames)
    return result


def _next_flags(ended: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_first, ended) for the frames a NEXT_STEP vector env just returned, given which sub-envs' previous step
    ended an episode: those sub-envs returned their reset frame now (terminated and truncated are False there)."""
    is_first = ended
    return is_first, (terminated | truncated) & ~is_first


# --- logging ---------------------------------------------------------------------------------------------------
class Logger:
    """The same scalars to metrics.csv and TensorBoard. The CSV gains a column when a new metric appears (the
    file is rewritten with the wider header), and is appended to across resumes.

    `keep_until` is the step of the checkpoint a run starts from (0 for a new run): rows and TensorBoard events
    logged after it (by a run that crashed before its next checkpoint) are dropped, so that the resumed run
    does not log the same steps twice."""

    def __init__(self, logdir: Path, keep_until: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.path = logdir / "metrics.csv"
        self.header: list[str] = ["step"]
        if self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                self.header = list(reader.fieldnames or ["step"])
            kept = [r for r in rows if int(float(r["step"])) <= keep_until]
            if len(kept) < len(rows):
                self._rewrite(kept)
        # TensorBoard hides events with step >= purge_step written before this writer.
        self.tb = SummaryWriter(str(logdir), purge_step=keep_until + 1)

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
class DamagedCheckpoint(ValueError):
    """A checkpoint file that cannot be read (truncated, overwritten, not a checkpoint)."""


def save_checkpoint(path: Path, state: dict, keep_previous: bool = True) -> None:
    """Atomic, and keeps the one before: write a temporary file, move the current checkpoint to previous.pt,
    rename the temporary file over it. A crash while writing leaves the last checkpoint untouched; a checkpoint
    damaged later (disk, copy) still has its predecessor. The package version and checkpoint format are added.
    With `keep_previous=False` (best.pt) the file is replaced, still atomically, and previous.pt is left alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({**state, "format": CHECKPOINT_FORMAT, "version": __version__}, tmp)
        if path.exists() and keep_previous:
            os.replace(path, path.with_name(PREVIOUS))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by `save_checkpoint`. Raises one clear ValueError naming the file when it is
    missing, damaged (`DamagedCheckpoint`) or written by a package version with another checkpoint format."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors for damaged files
        reason = (str(error).splitlines() or [""])[0][:100]
        raise DamagedCheckpoint(f"checkpoint {path} is damaged or not a dreamer_tutorial checkpoint "
                                f"({type(error).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"checkpoint {path} is not a dreamer_tutorial checkpoint")
    if state.get("format", 1) != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} was written by dreamer_tutorial {state.get('version', '0.1.0')} "
                         f"(checkpoint format {state.get('format', 1)}); this is {__version__} (format "
                         f"{CHECKPOINT_FORMAT}), whose agent behaves differently: retrain, or install that version")
    return state


def has_checkpoint(logdir: str | Path) -> bool:
    """Whether `logdir` holds a run that `load_latest` can continue (latest.pt, or previous.pt after a crash)."""
    folder = Path(logdir) / "checkpoints"
    return (folder / CHECKPOINT).exists() or (folder / PREVIOUS).exists()


def load_latest(logdir: str | Path, fallback: bool = False) -> dict:
    """The latest checkpoint of a run. With `fallback`, a damaged latest.pt (or one missing after a crash
    between the two renames of `save_checkpoint`) falls back to previous.pt, with a warning line on stderr."""
    folder = Path(logdir) / "checkpoints"
    latest, previous = folder / CHECKPOINT, folder / PREVIOUS
    if not has_checkpoint(logdir):
        raise ValueError(f"no checkpoint in {folder} (is {logdir} the logdir of a run?)")
    if not latest.exists() and fallback:
        return load_checkpoint(previous)
    try:
        return load_checkpoint(latest)
    except DamagedCheckpoint as error:
        if not (fallback and previous.exists()):
            hint = f"; the checkpoint before it is {previous}" if previous.exists() else ""
            raise DamagedCheckpoint(f"{error}{hint}") from None
        print(f"warning: {error}; continuing from the checkpoint before it, {previous}", file=sys.stderr)
        return load_checkpoint(previous)


def resume_config(logdir: str | Path, overrides: dict | None = None) -> Config:
    """The config a run in `logdir` was trained with (from its latest checkpoint), with `overrides` applied:
    what `python -m dreamer_tutorial.train --logdir D --resume [--steps N ...]` continues with."""
    saved = load_latest(logdir, fallback=True)["config"]
    return Config(**{**saved, "logdir": str(logdir)}).replace(**(overrides or {}))


def kept_path(logdir: str | Path, step: int) -> Path:
    """Where a run with keep_eval_agents keeps the agent of its evaluation at `step`."""
    return Path(logdir) / "checkpoints" / KEPT.format(step=step)


def kept_steps(logdir: str | Path) -> list[int]:
    """The steps whose agents a run kept (`keep_eval_agents`): checkpoints/eval_<step>.pt, in order."""
    folder = Path(logdir) / "checkpoints"
    return sorted(int(p.stem.removeprefix("eval_")) for p in folder.glob("eval_*.pt")
                  if p.stem.removeprefix("eval_").isdigit())


def load_agent(logdir: str | Path, device: str | None = None, best: bool = False,
               step: int | None = None) -> tuple[Dreamer, Config]:
    """The agent of a finished (or interrupted) run, from `logdir/checkpoints/latest.pt`, ready to evaluate; with
    `best`, the one of the run's best evaluation during training (`checkpoints/best.pt`) instead; with `step`, the
    one of the evaluation at that step (`checkpoints/eval_<step>.pt`, kept by runs with keep_eval_agents)."""
    folder = Path(logdir) / "checkpoints"
    if best and step is not None:
        raise ValueError("choose one agent: best (the best evaluation) or step (the evaluation at a step), not both")
    if best:
        path = folder / BEST
        if not path.is_file():
            raise ValueError(f"no {BEST} in {folder}: a run writes it at its first evaluation (runs trained "
                             f"before the package kept it have none)")
        state = load_checkpoint(path)
    elif step is not None:
        path = kept_path(logdir, step)
        if not path.is_file():
            kept = kept_steps(logdir)
            raise ValueError(f"no agent of step {step} in {folder}: "
                             + (f"the run kept those of steps {', '.join(map(str, kept))}" if kept else
                                "the run kept none (only runs with keep_eval_agents keep one per evaluation)"))
        state = load_checkpoint(path)
    else:
        state = load_latest(logdir)
    config = Config(**state["config"])
    if device is not None:
        config = config.replace(device=device)
    env = env_from_config(config)
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
        has_run = has_checkpoint(self.logdir)
        if not resume and has_run:
            raise ValueError(f"{self.logdir} already holds a run; pass resume=True (--resume) to continue it or "
                             f"choose another logdir")
        saved = load_latest(self.logdir, fallback=True) if resume and has_run else None
        if saved is not None:
            if "replay" not in saved:
                raise ValueError(f"cannot resume: the checkpoint in {self.logdir} has no replay buffer (a copy "
                                 f"made for evaluation); continue the run from its own logdir")
            self._check_resumable(Config(**saved["config"]), saved["counters"]["step"])
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
        self.seconds = 0.0  # wall clock of the kept steps over all sittings (steps dropped on a resume drop theirs)
        self.sitting_start = time.monotonic()
        self.run_index = 0  # how many times this run was started (resumes get new env seeds)
        self.best_path = self.logdir / "checkpoints" / BEST
        self.best_eval = self._best_so_far() if resume else -np.inf
        if saved is not None:
            self._restore(saved)
            for step in kept_steps(self.logdir):  # agents a crashed sitting kept after the checkpoint: not this run's
                if step > self.step:
                    kept_path(self.logdir, step).unlink()
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.logger = Logger(self.logdir, keep_until=self.step)
        self.progress = progress
        self.episode_returns: list[float] = []
        self.train_metrics: dict[str, list[float]] = {}

    def _check_resumable(self, saved: Config, step: int) -> None:
        changed = [f"{k} ({getattr(saved, k)!r} -> {getattr(self.config, k)!r})" for k in _STRUCTURAL
                   if getattr(saved, k) != getattr(self.config, k)]
        if changed:
            raise ValueError(f"cannot resume: the checkpoint in {self.logdir} was trained with other sizes or env: "
                             f"{', '.join(changed)}")
        if step >= self.config.steps:
            raise ValueError(f"the run in {self.logdir} has already reached {step} of steps={self.config.steps}; "
                             f"pass a larger steps (--steps N) to continue it")

    # checkpoint contents: everything needed to continue as if never stopped (except env internals: episodes
    # in flight restart, which the replay marks with is_first)
    def _state(self) -> dict:
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"agent": self.agent.checkpoint_state(), "replay": self.replay.state_dict(),
                "counters": {"step": self.step, "updates": self.updates, "episodes": self.episodes,
                             "last_log": self.last_log, "last_eval": self.last_eval, "run_index": self.run_index,
                             "seconds": self._seconds()},
                "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng, "numpy": self.rng.bit_generator.state},
                "config": self.config.to_dict()}

    def _restore(self, state: dict) -> None:
        self.agent.load_checkpoint_state(state["agent"])
        self.replay.load_state_dict(state["replay"])
        counters = state["counters"]
        self.step, self.updates, self.episodes = counters["step"], counters["updates"], counters["episodes"]
        self.last_log, self.last_eval = counters["last_log"], counters["last_eval"]
        self.run_index = counters["run_index"] + 1
        self.seconds = counters.get("seconds", 0.0)  # checkpoints of package 0.2.0 did not count it
        if "seconds" not in counters:
            print(f"note: this checkpoint (step {self.step:,}) holds no training clock (package 0.2.0): the `minutes` "
                  f"column restarts at 0 in this sitting; add the earlier sittings' minutes by hand", file=sys.stderr)
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.rng.bit_generator.state = state["rng"]["numpy"]

    def checkpoint(self) -> None:
        save_checkpoint(self.ckpt_path, self._state())
        self.last_checkpoint = time.monotonic()

    def _best_so_far(self) -> float:
        """The evaluation return of the agent in best.pt: read from the file, not from latest.pt, since a run that
        crashed may have written best.pt after its last checkpoint. A damaged best.pt is replaced at the next
        evaluation (with a warning now)."""
        if not self.best_path.is_file():
            return -np.inf
        try:
            return float(load_checkpoint(self.best_path)["counters"]["eval_return"])
        except (ValueError, KeyError) as error:
            print(f"warning: cannot read the evaluation return in {self.best_path} ({type(error).__name__}: {error}); "
                  f"the next evaluation replaces it", file=sys.stderr)
            return -np.inf

    def _seconds(self) -> float:
        return self.seconds + time.monotonic() - self.sitting_start

    def run(self) -> dict:
        from tqdm.auto import tqdm

        c, agent = self.config, self.agent
        start_time, start_step, start_updates = time.monotonic(), self.step, self.updates
        self.sitting_start = start_time
        self.last_checkpoint = time.monotonic()
        n = c.num_envs
        obs, _ = self.envs.reset(seed=c.seed + 1000 * self.run_index)
        self.eval_envs.reset(seed=c.seed + 1_000_000 + 1000 * self.run_index)
        zeros = np.zeros((n, agent.action_dim), np.float32)
        # is_first: obs[i] is a reset frame; ended: sub-env i's last step ended its episode.
        is_first, ended, running, policy_state = np.ones(n, bool), np.zeros(n, bool), np.zeros(n), None
        self.replay.add(obs, zeros, np.zeros(n), is_first, np.zeros(n, bool))
        bar = tqdm(total=c.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        try:
            while self.step < c.steps:
                actions, policy_state = agent.policy(obs, policy_state, training=True, is_first=is_first)
                if self.step < c.prefill:  # random actions, but the latent follows the frames and those actions
                    actions = _random_actions(self.rng, n, agent.action_dim, agent.discrete)
                    policy_state = (policy_state[0], torch.as_tensor(actions, device=agent.device))
                obs, reward, terminated, truncated, _ = self.envs.step(_to_env_actions(actions, agent.discrete))
                is_first, ended = _next_flags(ended, terminated, truncated)
                reward = np.where(is_first, 0.0, reward)
                self.replay.add(obs, np.where(is_first[:, None], zeros, actions), reward, is_first,
                                terminated & ~is_first)
                running += reward
                for i in np.flatnonzero(ended):
                    self.episode_returns.append(float(running[i]))
                    self.episodes += 1
                running[ended] = 0.0
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
            if self.step > self.last_log:
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
        lr_factor = c.lr_drop if c.lr_drop_step and self.step >= c.lr_drop_step else 1.0
        for opt in self.agent.optimizers().values():
            opt.scale_lr(lr_factor)
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
                        "updates_per_s": (self.updates - start_updates) / elapsed, "minutes": self._seconds() / 60})
        self.logger.write(self.step, metrics)
        shown = {k: metrics[k] for k in ("episode_return", "model_loss", "actor_loss") if k in metrics}
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        self.train_metrics, self.episode_returns, self.last_log = {}, [], self.step

    def _evaluate(self) -> dict:
        c = self.config
        record = c.video_every_eval
        result = evaluate(self.agent, self.eval_envs, c.eval_episodes, record=record)
        self.last_eval = self.step
        self.logger.write(self.step, {"eval_return": result["mean"], "eval_std": result["std"],
                                      "minutes": self._seconds() / 60})
        is_best = result["mean"] > self.best_eval
        if is_best or c.keep_eval_agents:
            agent_state = {"agent": self.agent.checkpoint_state(), "config": self.config.to_dict(),
                           "counters": {"step": self.step, "updates": self.updates, "eval_return": result["mean"],
                                        "eval_std": result["std"]}}
        if is_best:
            self.best_eval = result["mean"]
            save_checkpoint(self.best_path, agent_state, keep_previous=False)
        if c.keep_eval_agents:
            save_checkpoint(kept_path(self.logdir, self.step), agent_state, keep_previous=False)
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
