"""Graders of lesson 07 (the Dreamer agent): greedy actions, resetting the state at episode starts, the agent's
`policy` and `train_step`, and whether the assembled agent learns PointReach.

`check_policy` and `check_train_step` build the package's `Dreamer` and the learner's class with the same config
and spaces, copy the package's weights into the learner's agent (parameter tensors in order: the learner's class
must hold the same parts, a `WorldModel` then an `ActorCritic`, as lesson 07's `MyDreamer.__init__` builds them),
seed torch identically before every call, and compare what comes out: actions, losses and parameter updates. They
use a continuous action space, whose greedy actions (the actor's mean) change with every detail of the latent state
and whose actor learns by dynamics backpropagation (so a gradient that leaks into the world model shows up).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ._core import CheckFailed, call_learner, check_function, fail, passed, solution

# How much a trained agent's mean greedy return must beat the random policy's by on the fixed-target discrete
# PointReach (`check_learning`). Chosen with lesson 07's quick-mode loop as it was (debug preset with model_lr 3e-3,
# 2300 env steps, 1000 updates) for seeds 0, 1, 2: greedy -28.8, -27.5, -19.3 against random -43.7 (10 episodes
# each), margins of 14.9, 16.2 and 24.4. Over 24 seeds that loop passed only 10; the loop now updates on every step
# (2000 updates) and passes 14 of 16 runs (results/lessons/07/seeds/, benchmarks/lesson07_seeds.py).
LEARNING_MARGIN = 10.0


def reference_greedy_action(logits: torch.Tensor) -> torch.Tensor:
    from ..behavior import OneHotCategorical

    return OneHotCategorical(logits).mode()


def reference_reset_state(deter: torch.Tensor, stoch: torch.Tensor, is_first: torch.Tensor):
    keep = (~is_first).float()
    return deter * keep[:, None], stoch * keep[:, None, None]


def check_greedy_action(fn: Callable) -> None:
    check_function(fn, reference_greedy_action, lambda g: (torch.randn(16, 5, generator=g),),
                   name="greedy_action", hint="evaluation acts with the mode: a one-hot vector (float) of the most "
                   "likely action, same shape as the logits")


def check_reset_state(fn: Callable) -> None:
    def make_inputs(g):
        return (torch.randn(6, 32, generator=g), torch.rand(6, 8, 8, generator=g),
                torch.rand(6, generator=g) < 0.5)
    check_function(fn, reference_reset_state, make_inputs, name="reset_state",
                   hint="rows where a new episode starts go back to the all-zero initial state; other rows keep "
                   "their state unchanged")


# --- the agent's two methods (lesson 07's MyDreamer) -----------------------------------------------------------------
@torch.no_grad()
def reference_policy(self, obs, state=None, training=True, is_first=None):
    """MyDreamer.policy: actions (N, A) for uint8 frames (N, H, W, 3), and the new state (latent, actions).

    The frame goes through the same preprocessing as in training (world_model.embed), updates the posterior
    together with the previous action, and both are reset to zero on the rows whose frame is a reset frame."""
    world_model = self.world_model
    device = next(self.parameters()).device
    obs = torch.as_tensor(np.asarray(obs), device=device)
    n = obs.shape[0]
    if state is None:  # the first call: every row starts an episode
        state = (world_model.rssm.initial(n, device), torch.zeros(n, self.action_dim, device=device))
        is_first = np.ones(n, bool)
    latent, prev_action = state
    first = torch.as_tensor(np.zeros(n, bool) if is_first is None else np.asarray(is_first, bool), device=device)
    latent, _ = world_model.rssm.obs_step(latent, prev_action, world_model.embed(obs), first)
    dist = self.task_behavior.actor(latent.feat)
    action = dist.rsample() if training else dist.mode()  # explore while training, act greedily in evaluation
    return action.cpu().numpy(), (latent, action)


def reference_train_step(self, batch):
    """MyDreamer.train_step: one world-model update, then one actor and critic update in imagination that starts
    from every posterior state of the batch. Returns float metrics."""
    c = self.config
    device = next(self.parameters()).device
    batch = {k: torch.as_tensor(v).to(device) for k, v in batch.items()}
    model_loss, post, metrics = self.world_model.loss(batch)
    self.model_opt.zero_grad(set_to_none=True)
    model_loss.backward()
    nn.utils.clip_grad_norm_(self.world_model.parameters(), c.grad_clip)
    self.model_opt.step()
    start = post.map(lambda x: x.detach().flatten(0, 1))  # stop-gradient: behaviour learning leaves the model alone
    cont = 1.0 - batch["is_terminal"].flatten().float()  # may the episode continue after the start state?
    metrics.update(self.task_behavior.train_step(self.world_model, start, cont))
    return {k: float(v) for k, v in metrics.items()}


_OBS_SPACE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
# (env, first step of a new episode) after the start: reset frames at different steps in different envs
_RESETS = ((0, 4), (1, 6), (2, 4), (2, 8))


def _agents(name: str, cls: Callable, discrete: bool):
    """The package's Dreamer and the learner's agent with the same config, spaces and weights."""
    from ..agent import Dreamer
    from ..config import Config

    config = Config.preset("debug", device="cpu")
    act_space = gym.spaces.Discrete(5) if discrete else gym.spaces.Box(-1, 1, (2,), np.float32)
    reference = Dreamer(config, _OBS_SPACE, act_space)
    mine = call_learner(name, cls, config, _OBS_SPACE, act_space, context="building the agent")
    if not isinstance(mine, nn.Module):
        fail(name, f"the agent is a {type(mine).__name__}, not a torch nn.Module that holds its parts.",
             "subclass nn.Module and build the world model and the actor-critic in __init__")
    ours, theirs = list(reference.parameters()), list(mine.parameters())
    shapes = [tuple(p.shape) for p in ours]
    if [tuple(p.shape) for p in theirs] != shapes:
        fail(name, f"the agent's parameters ({len(theirs)} tensors) are not those of the package's Dreamer "
                   f"({len(ours)} tensors: world model, actor, critic, target critic), so its weights cannot be "
                   "loaded into yours.", "build a WorldModel, then an ActorCritic, from the config (as given)")
    with torch.no_grad():
        for mine_p, ref_p in zip(theirs, ours, strict=True):
            mine_p.copy_(ref_p)
    return config, reference, mine


def _as_actions(name: str, out, n: int, action_dim: int, step: int) -> torch.Tensor:
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(name, f"policy returned {type(out).__name__}; expected a pair (actions, state).")
    actions = out[0].detach().cpu() if torch.is_tensor(out[0]) else torch.as_tensor(np.asarray(out[0]))
    if tuple(actions.shape) != (n, action_dim):
        fail(name, f"on step {step} the actions have shape {tuple(actions.shape)}, expected {(n, action_dim)}.",
             "one action row per frame of the batch (one-hot for discrete actions)")
    return actions.float()


def _learner_actions(name: str, agent, frames: torch.Tensor, firsts: np.ndarray, training: bool, seed: int,
                     action_dim: int) -> torch.Tensor:
    """The learner's actions (T, N, A) over the frame sequence, seeded like the reference."""
    state, out = None, []
    for t, (obs, first) in enumerate(zip(frames.numpy(), firsts, strict=True)):
        torch.manual_seed(seed + t)
        result = call_learner(name, agent.policy, obs, state, training=training, is_first=first,
                              context=f"policy call {t}")
        out.append(_as_actions(name, result, len(obs), action_dim, t))
        state = result[1]
    return torch.stack(out)


def _reference_actions(agent, frames: torch.Tensor, firsts: np.ndarray, seed: int, sample: bool = False,
                       keep_action: bool = True) -> torch.Tensor:
    """The package agent's actions step by step from its parts, with a mistake switched on for diagnosis."""
    world_model, actor = agent.world_model, agent.task_behavior.actor
    n = frames.shape[1]
    latent, prev, out = world_model.rssm.initial(n, "cpu"), torch.zeros(n, agent.action_dim), []
    with torch.no_grad():
        for t, (obs, first) in enumerate(zip(frames, firsts, strict=True)):
            torch.manual_seed(seed + t)
            latent, _ = world_model.rssm.obs_step(latent, prev, world_model.embed(obs), torch.as_tensor(first))
            dist = actor(latent.feat)
            action = dist.rsample() if sample else dist.mode()
            prev = action if keep_action else torch.zeros_like(action)
            out.append(action)
    return torch.stack(out)


def _reset_variants(firsts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reset flags of three mistakes: no reset after the first frame, every later reset one frame late, one
    frame early (the first frame always resets: the state starts empty)."""
    later = firsts.copy()
    later[0] = False
    none, late, early = np.zeros_like(firsts), np.zeros_like(firsts), np.zeros_like(firsts)
    late[1:], early[:-1] = later[:-1], later[1:]
    for flags in (none, late, early):
        flags[0] = True
    return none, late, early


def check_policy(cls: Callable) -> None:
    """`cls(config, obs_space, act_space).policy(obs, state, training, is_first)` acts like the package's Dreamer:
    the same greedy actions over a few episodes in 3 parallel envs, with episodes starting at different frames
    (a missing reset, or one a frame early or late, is named), and samples when training."""
    name = "policy"
    hint = ("embed the frame (world_model.embed), then rssm.obs_step(latent, previous action, embed, is_first); "
            "the actor's mode when training=False, a sample when training=True; return (actions, new state)")
    steps, n = 11, 3
    g = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (steps, n, 64, 64, 3), generator=g, dtype=torch.uint8)
    firsts = np.zeros((steps, n), bool)
    firsts[0] = True
    for env, step in _RESETS:
        firsts[step, env] = True
    seed = 1234
    for discrete in (False, True):
        _, reference, mine = _agents(name, cls, discrete)
        want = torch.stack([torch.as_tensor(a) for a in _policy_run(reference, frames, firsts, False, seed)])
        got = _learner_actions(name, mine, frames, firsts, False, seed, reference.action_dim)
        if not torch.allclose(got, want, atol=1e-4):
            _explain_policy(name, reference, got, want, frames, firsts, seed, discrete, hint)
        want = torch.as_tensor(_policy_run(reference, frames[:2], firsts[:2], True, seed)[1])
        got = _learner_actions(name, mine, frames[:2], firsts[:2], True, seed, reference.action_dim)[1]
        if not torch.allclose(got, want, atol=1e-4):
            if torch.allclose(got, _reference_actions(reference, frames[:2], firsts[:2], seed)[1], atol=1e-4):
                fail(name, "with training=True your actions are the actor's mode: training must explore.",
                     "sample the action from the actor's distribution when training")
            fail(name, "with training=True your actions differ from the reference's samples (same seed).", hint)
    passed(name, cls)


def _policy_run(agent, frames, firsts, training, seed):
    state, out = None, []
    for t, (obs, first) in enumerate(zip(frames.numpy(), firsts, strict=True)):
        torch.manual_seed(seed + t)
        action, state = agent.policy(obs, state, training=training, is_first=first)
        out.append(action)
    return out


def _explain_policy(name, reference, got, want, frames, firsts, seed, discrete, hint):
    bad = (got - want).abs().amax(-1) > 1e-4  # (T, N)
    step, env = (int(i) for i in torch.nonzero(bad)[0])
    kind = "discrete (one-hot)" if discrete else "continuous"
    none, late, early = _reset_variants(firsts)
    variants = [
        (_reference_actions(reference, frames, none, seed),
         "missing reset: after a new episode starts (is_first), your latent state still remembers the previous "
         "episode.", "reset the latent state and the previous action to zero on the rows where is_first is true"),
        (_reference_actions(reference, frames, late, seed),
         "the reset comes one frame late: you reset on the frame after the reset frame.",
         "reset on the frame whose is_first is true, before it updates the latent state"),
        (_reference_actions(reference, frames, early, seed),
         "the reset comes one frame early: you reset on the previous episode's last frame instead of on the "
         "reset frame (off by one).", "reset on the frame whose is_first is true, not on the one before it"),
        (_reference_actions(reference, frames, firsts, seed, sample=True),
         "with training=False your actions are samples: evaluation acts greedily.",
         "take the actor's mode when training is False"),
        (_reference_actions(reference, frames, firsts, seed, keep_action=False),
         "the previous action does not reach the latent state.",
         "the state you return must carry the action just taken, for the next call's obs_step"),
    ]
    for actions, what, variant_hint in variants:
        if torch.allclose(got, actions, atol=1e-4):
            fail(name, what, variant_hint)
    resets = "the first frame" if step == 0 else f"step {step} of env {env}"
    fail(name, f"your greedy {kind} actions differ from the package's Dreamer (same weights and seed) from "
               f"{resets} on.", hint)


def _replay_batch(g: torch.Generator, batch: int, length: int, action_dim: int) -> dict[str, torch.Tensor]:
    """A batch shaped like SequenceReplay.sample: episodes start at random rows (zero action and reward), and the
    row before a start is sometimes terminal."""
    is_first = torch.rand(batch, length, generator=g) < 0.2
    is_first[:, 0] = True
    is_terminal = torch.zeros(batch, length, dtype=torch.bool)
    is_terminal[:, :-1] = is_first[:, 1:] & (torch.rand(batch, length - 1, generator=g) < 0.7)
    keep = (~is_first).float()
    return {"obs": torch.randint(0, 256, (batch, length, 64, 64, 3), generator=g, dtype=torch.uint8),
            "action": (torch.rand(batch, length, action_dim, generator=g) * 2 - 1) * keep[..., None],
            "reward": torch.randn(batch, length, generator=g) * keep, "is_first": is_first,
            "is_terminal": is_terminal}


def _parts(reference) -> list[tuple[str, list[int]]]:
    """(part name, indices into parameters()) of the package agent's world model, actor, critic, target critic."""
    names = {"world_model.": "world model", "task_behavior.actor.": "actor", "task_behavior.critic.": "critic",
             "task_behavior.target_critic.": "target critic"}
    parts: dict[str, list[int]] = {}
    for i, (param_name, _) in enumerate(reference.named_parameters()):
        part = next(label for prefix, label in names.items() if param_name.startswith(prefix))
        parts.setdefault(part, []).append(i)
    return list(parts.items())


def _deltas(params: list[torch.Tensor], before: list[torch.Tensor], index: list[int]) -> torch.Tensor:
    return torch.cat([(params[i].detach() - before[i]).flatten() for i in index])


def _differs(got: torch.Tensor, want: torch.Tensor) -> bool:
    return bool((got - want).norm() > 1e-3 * want.norm() + 1e-7)


def _learner_step(name: str, agent, batch: dict[str, torch.Tensor], hint: str) -> dict:
    try:
        return call_learner(name, agent.train_step, {k: v.clone() for k, v in batch.items()}, hint=hint)
    except CheckFailed as error:
        cause = str(error.__cause__ or "")
        if "backward through the graph a second time" in cause or "modified by an inplace operation" in cause:
            fail(name, "gradient leak: the actor's loss reaches back into the world model's graph (your code "
                       f"raised {type(error.__cause__).__name__}).",
                 "the imagination must start from the posterior states with the gradient stopped (detach)")
        raise


def check_train_step(cls: Callable) -> None:
    """`cls(config, obs_space, act_space).train_step(batch)` updates the agent like the package's
    `Dreamer.train_step`: over two steps on replay-like batches (same weights, same seeds), the same model loss and
    the same updates of the world model, actor and critic, and none of the target critic (copied only every
    `target_update_every` updates)."""
    name = "train_step"
    hint = ("world model: loss, zero_grad, backward, clip to config.grad_clip, step; then the actor-critic's "
            "train_step from every posterior state (B*T, gradient stopped) with continuation 1 - is_terminal")
    config, reference, mine = _agents(name, cls, discrete=False)
    parts = _parts(reference)
    g = torch.Generator().manual_seed(3)
    for update in range(2):
        batch = _replay_batch(g, config.batch_size, config.batch_length, reference.action_dim)
        before = [p.detach().clone() for p in reference.parameters()]
        snapshot = copy.deepcopy(reference.checkpoint_state())  # weights and optimiser states before the step
        torch.manual_seed(100 + update)
        want = reference.train_step({k: v.clone() for k, v in batch.items()})
        torch.manual_seed(100 + update)
        got = _learner_step(name, mine, batch, hint)
        if not isinstance(got, dict) or "model_loss" not in got:
            fail(name, f"train_step returned {type(got).__name__}; expected a dict of float metrics with at least "
                       "'model_loss' (the world model's loss).", hint)
        if abs(float(got["model_loss"]) - want["model_loss"]) > 1e-4 * (1 + abs(want["model_loss"])):
            fail(name, f"on update {update + 1} your model_loss differs from the reference's (same weights, batch "
                       "and seed).", "report world_model.loss(batch), the loss of this update, before the step")
        ref_params, mine_params = list(reference.parameters()), list(mine.parameters())
        for part, index in parts:
            want_d, got_d = _deltas(ref_params, before, index), _deltas(mine_params, before, index)
            if not _differs(got_d, want_d):
                continue
            if not want_d.any():
                fail(name, f"the {part} changed, but this update must leave it alone.",
                     "only the world model, the actor and the critic are trained here")
            if not got_d.any():
                fail(name, f"the {part} was not updated (update {update + 1}).", hint)
            if update == 1:
                fail(name, f"the first update matches but the second changes the {part} differently: are the "
                           "gradients zeroed before each backward pass?", hint)
            if part != "world model":
                _explain_behaviour(name, reference, snapshot, batch, 100 + update, got_d, index, part)
            fail(name, f"the {part} changed differently from the reference (update {update + 1}).", hint)
    passed(name, cls)


def _explain_behaviour(name, reference, snapshot, batch, seed, got_d, index, part):
    """Name the inverted continuation flag when that is what the learner's actor-critic update did: replay the
    update from the `snapshot` taken before it, with 1 - is_terminal replaced by is_terminal."""
    from ..agent import Dreamer

    agent = Dreamer(reference.config, _OBS_SPACE, gym.spaces.Box(-1, 1, (reference.action_dim,), np.float32))
    agent.load_checkpoint_state(snapshot)
    before = [p.detach().clone() for p in agent.parameters()]
    torch.manual_seed(seed)
    model_loss, post, _ = agent.world_model.loss(batch)
    agent.model_opt.zero_grad(set_to_none=True)
    model_loss.backward()
    nn.utils.clip_grad_norm_(agent.world_model.parameters(), agent.config.grad_clip)
    agent.model_opt.step()
    start = post.map(lambda x: x.detach().flatten(0, 1))
    agent.task_behavior.train_step(agent.world_model, start, batch["is_terminal"].flatten().float())
    if not _differs(got_d, _deltas(list(agent.parameters()), before, index)):
        fail(name, f"the {part}'s update uses inverted continuation flags (is_terminal where 1 - is_terminal "
                   "belongs).", "the imagined return of a start state counts only if its episode may continue")


# --- does the assembled agent learn? ---------------------------------------------------------------------------------
@solution("dreamer_tutorial.agent.Dreamer")
def check_learning(agent, env_fn: Callable[[], gym.Env], episodes: int = 10, seed: int = 100) -> None:
    """The trained `agent`'s mean greedy return on `env_fn()` beats a uniformly random policy's by
    `LEARNING_MARGIN` (`episodes` episodes each, from env seeds derived from `seed`). It grades a training run, not
    a function: its "solution" is the package's Dreamer, an agent that passes after lesson 07's loop."""
    from ..lessons import random_policy_returns
    from ..train import evaluate

    name = "learning"
    env = env_fn()
    random_returns = random_policy_returns(env, episodes, seed)
    greedy = call_learner(name, evaluate, agent, env, episodes, seed=seed, context="evaluating the greedy policy")
    env.close()
    random_mean = float(np.mean(random_returns))
    print(f"greedy return {greedy['mean']:.1f} ± {greedy['std']:.1f}, random policy {random_mean:.1f} ± "
          f"{np.std(random_returns):.1f} ({episodes} episodes each)")
    if greedy["mean"] < random_mean + LEARNING_MARGIN:
        fail(name, f"the greedy return ({greedy['mean']:.1f}) does not beat the random policy's ({random_mean:.1f}) "
                   f"by {LEARNING_MARGIN:g}.", "check that policy and train_step pass their graders, and that the "
                   "loop trains every train_every steps after the prefill")
    passed(name, agent)
