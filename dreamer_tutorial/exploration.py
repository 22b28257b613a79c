"""Lesson 06's experiments on PointRooms (two rooms joined by a gap, sparse reward far from the start).

`exploration_run(variant, seed, steps)` trains one agent (or runs random actions) and logs where it went;
`noisy_tv_run(seed, updates)` trains a world model and both intrinsic predictors on random data from the
noisy-TV variant of the task and measures their rewards inside and outside the TV. Both are module-level so that
`dreamer_tutorial.lessons.parallel_map` can run seeds and variants in separate processes; the helpers below turn
the logs into coverage curves, visit maps and the summary table.

Coverage is counted on a BINS x BINS grid over the square; the FAR ROOM is the grid's right half (x > 0), the
room behind the wall, which the agent can only reach through the gap.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from .agent import Dreamer
from .config import Config
from .envs import make_env
from .intrinsic import Curiosity, Plan2Explore
from .replay import SequenceReplay
from .world_model import WorldModel

ENV_ID = "dreamer_tutorial/PointRooms-v0"
EPISODE = gym.spec(ENV_ID).max_episode_steps  # 100 steps, all episodes end by this time limit
VARIANTS = ("random", "none", "curiosity", "plan2explore")
BINS = 10


def exploration_run(variant: str, seed: int, steps: int, prefill: int = 500, train_every: int = 5,
                    device: str = "cpu", overrides: dict | None = None) -> dict[str, np.ndarray]:
    """One run on PointRooms: `prefill` random steps, then the agent's own policy (or random actions throughout
    for variant "random"), one update every `train_every` steps. The Dreamer agents use the `debug` preset with
    `intrinsic=variant` and the authors' scales (intrinsic 1, extrinsic 1), changed by `overrides` (Config
    fields): until the target is found the extrinsic reward is 0 everywhere, so the intrinsic reward alone steers
    the actor.

    Returns numpy arrays: `point` (steps, 2) positions after each step, `reward` (steps,), `r_int` and
    `r_int_step` (the unscaled intrinsic reward of each real transition after the prefill and its step),
    `update_step` and `imag_reward` (the mean imagined reward the actor maximised, per update)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.manual_seed(seed)
    env = make_env(ENV_ID)
    env.action_space.seed(seed)
    agent = None
    if variant != "random":
        config = Config.preset("debug", **{"intrinsic": variant, "device": device, "seed": seed, **(overrides or {})})
        agent = Dreamer(config, env.observation_space, env.action_space)
    replay = SequenceReplay(steps + 1000, env.observation_space.shape, 2, seed=seed)
    log: dict[str, list] = {k: [] for k in ("point", "reward", "r_int", "r_int_step", "update_step", "imag_reward")}
    obs, _ = env.reset(seed=seed)
    replay.add(obs, np.zeros(2), 0.0, True, False)
    state, last = None, None  # the policy's recurrent state; (latent, action) of the previous step
    for step in range(steps):
        if agent is not None and step >= prefill:
            action, state = agent.policy(obs, state)
            if last is not None and agent.intrinsic is not None:  # intrinsic reward of the last real transition
                r_int = agent.intrinsic.reward(last[0].feat, last[1], state[0].stoch.flatten(-2))
                log["r_int"].append(float(r_int[0]))
                log["r_int_step"].append(step)
            last, action = state, action[0]
        else:
            action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, reward, False, terminated)
        log["point"].append(env.unwrapped.point.copy())
        log["reward"].append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            replay.add(obs, np.zeros(2), 0.0, True, False)
            state, last = None, None
        if agent is not None and step >= prefill and (step - prefill) % train_every == 0:
            batch = replay.sample(agent.config.batch_size, agent.config.batch_length, device)
            log["imag_reward"].append(agent.train_step(batch)["imag_reward"])
            log["update_step"].append(step)
    env.close()
    return {k: np.asarray(v, np.float32) for k, v in log.items()}


# --- measures ------------------------------------------------------------------------------------------------------
def grid_cells(points: np.ndarray, bins: int = BINS) -> np.ndarray:
    """(N, 2) positions in [-1, 1]^2 -> (N, 2) integer cells (column, row) of a bins x bins grid."""
    return np.clip(((np.asarray(points) + 1) / 2 * bins).astype(int), 0, bins - 1)


def far_room_cells(bins: int = BINS) -> np.ndarray:
    """Boolean (bins, bins) mask indexed [column, row]: the cells of the far room (x > 0)."""
    mask = np.zeros((bins, bins), bool)
    mask[bins // 2:] = True
    return mask


def coverage_curve(points: np.ndarray, bins: int = BINS) -> np.ndarray:
    """After each step: the fraction of the far room's cells visited so far, (N,)."""
    cells = grid_cells(points, bins)
    far = far_room_cells(bins)
    flat = cells[:, 0] * bins + cells[:, 1]
    first = np.full(bins * bins, len(flat))
    np.minimum.at(first, flat[::-1], np.arange(len(flat))[::-1])  # first visit step of every cell
    new = np.zeros(len(flat) + 1)
    np.add.at(new, first[far.ravel()], 1)
    return np.cumsum(new[:-1]) / far.sum()


def visit_counts(points: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Visits per cell as an image (bins, bins): rows are y (for imshow with origin="lower"), columns x."""
    hist, *_ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, range=[[-1, 1], [-1, 1]])
    return hist.T


def first_found(reward: np.ndarray) -> float:
    """The first step with a sparse reward, or nan if the target was never reached."""
    hits = np.flatnonzero(np.asarray(reward) > 0)
    return float(hits[0]) if len(hits) else float("nan")


def episodes_at_target(reward: np.ndarray) -> int:
    """How many of the complete EPISODE-step episodes in a run collected any sparse reward."""
    reward = np.asarray(reward)
    return int((reward[:len(reward) // EPISODE * EPISODE].reshape(-1, EPISODE).sum(1) > 0).sum())


def summary_table(runs: dict[str, list[dict]], prefill: int) -> str:
    """Per variant, mean ± std over the seeds of: far-room coverage at the end, the share of the steps after the
    prefill spent in the far room, steps spent at the target (sparse reward collected), episodes that reached it,
    and the first step it was found (over the seeds that found it)."""
    def fmt(values):
        values = np.asarray(values, float)
        return f"{np.mean(values):7.1f} ± {np.std(values):5.1f}"

    lines = [f"{'variant':13s} {'far-room coverage %':>19s} {'steps in far room %':>19s} {'reward collected':>16s}"
             f" {'episodes at target':>18s} {'first found (step)':>22s}"]
    for variant, logs in runs.items():
        cover = [100 * coverage_curve(log["point"])[-1] for log in logs]
        far = [100 * np.mean(log["point"][prefill:, 0] > 0) for log in logs]
        reward = [log["reward"][prefill:].sum() for log in logs]
        episodes = [episodes_at_target(log["reward"]) for log in logs]
        found = [first_found(log["reward"]) for log in logs]
        hit = [f for f in found if np.isfinite(f)]
        found_text = f"{fmt(hit)} ({len(hit)}/{len(logs)})" if hit else f"never (0/{len(logs)})"
        lines.append(f"{variant:13s} {fmt(cover):>19s} {fmt(far):>19s} {fmt(reward):>16s} {fmt(episodes):>18s}"
                     f" {found_text:>22s}")
    return "\n".join(lines)


# --- the noisy TV on real latents ----------------------------------------------------------------------------------
def noisy_tv_run(seed: int, updates: int, episodes: int = 60, eval_every: int = 50,
                 device: str = "cpu") -> dict[str, np.ndarray]:
    """Curiosity and Plan2Explore on the latents of a world model trained alongside them, on random-action data
    from PointRooms with a noisy TV in the start room's corner.

    Collects `episodes` random episodes (plus 10 held-out ones), then makes `updates` updates of the world model
    (debug preset) and, on its posterior states, of a Curiosity predictor and a Plan2Explore ensemble. Every
    `eval_every` updates both rewards are measured on the held-out transitions, split by whether the point is
    in the TV after the transition. Returns `update` (E,), `curiosity` and `plan2explore` (E, 2) with columns
    (in the TV, elsewhere), and `tv_fraction`, the share of held-out transitions that end in the TV."""
    torch.manual_seed(seed)
    env = make_env(ENV_ID, noisy_tv=True)
    rng = np.random.default_rng(seed)

    def collect(n, first_seed):
        replay = SequenceReplay(n * 101 + 10, (64, 64, 3), 2, seed=seed)
        in_tv = []
        for episode in range(n):
            obs, _ = env.reset(seed=first_seed + episode)
            replay.add(obs, np.zeros(2), 0.0, True, False)
            in_tv.append(False)
            done = False
            while not done:
                action = rng.uniform(-1, 1, 2).astype(np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)
                replay.add(obs, action, reward, False, terminated)
                in_tv.append(env.unwrapped.in_tv())
                done = terminated or truncated
        return replay, np.array(in_tv)

    train_data, _ = collect(episodes, seed * 1000)
    held_out, held_in_tv = collect(10, seed * 1000 + episodes)
    n = len(held_out)
    eval_batch = {"obs": torch.as_tensor(held_out.obs[:, :n]).to(device),
                  "action": torch.as_tensor(held_out.action[:, :n]).to(device),
                  "is_first": torch.as_tensor(held_out.is_first[:, :n]).to(device)}
    tv = torch.as_tensor(held_in_tv[1:]).to(device)
    valid = ~eval_batch["is_first"][0, 1:].bool()

    config = Config.preset("debug", device=device, seed=seed)
    wm = WorldModel(config, action_dim=2).to(device)
    feat, stoch = wm.rssm.feat_dim, config.stoch * config.classes
    modules = {"curiosity": Curiosity(config, feat, 2, stoch).to(device),
               "plan2explore": Plan2Explore(config, feat, 2, stoch).to(device)}
    opt = torch.optim.Adam(wm.parameters(), lr=config.model_lr, eps=config.adam_eps)
    out: dict[str, list] = {"update": [], "curiosity": [], "plan2explore": []}
    for update in range(updates + 1):
        if update % eval_every == 0:
            with torch.no_grad():
                post, _ = wm.observe(eval_batch)
            out["update"].append(update)
            for name, module in modules.items():
                r = module.reward(post.feat[0, :-1], eval_batch["action"][0, 1:], post.stoch[0, 1:].flatten(-2))
                out[name].append([float(r[valid & tv].mean()), float(r[valid & ~tv].mean())])
        if update == updates:
            break
        batch = train_data.sample(config.batch_size, config.batch_length, device)
        loss, post, _ = wm.loss(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), config.grad_clip)
        opt.step()
        post = post.map(lambda x: x.detach())
        for module in modules.values():
            module.train_step(post, batch["action"], batch["is_first"])
    env.close()
    result = {k: np.asarray(v, np.float32) for k, v in out.items()}
    result["tv_fraction"] = np.float32((valid & tv).float().mean().item())
    return result
