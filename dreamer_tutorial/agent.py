"""The Dreamer agent: acts with a recurrent latent state, and learns from replay batches.

One `train_step(batch)` is the inner loop of DreamerV1's Algorithm 1 (Hafner et al., 2020), which DreamerV2
keeps (DreamerV2's own Algorithm 1 is the straight-through gradient snippet, see rssm.py):
  1. world model: filter the batch with the RSSM and minimise reconstruction + reward + discount + KL;
  2. intrinsic module (optional): fit the next-latent predictor(s) on the real transitions;
  3. behaviour: from every posterior state of the batch, imagine H steps and update actor and critic
     (and, for Plan2Explore with `expl_behavior`, a second actor-critic that maximises the intrinsic reward).

Acting (`policy`) runs the same preprocessing as training (uint8 HWC frames -> [-0.5, 0.5] CHW floats),
updates the posterior with the new frame and the previous action (both reset to zero where `is_first`: the
frame is a reset frame), and samples from the actor (training) or takes its mode (evaluation).
"""

from __future__ import annotations

import contextlib

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .behavior import ActorCritic
from .config import Config
from .intrinsic import make_intrinsic
from .networks import init_weights
from .optim import AdamWithDecay
from .rssm import State
from .world_model import WorldModel


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda if available else cpu; any other name must be a device this machine has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but this torch ({torch.__version__}) sees no CUDA GPU; "
                         f"use --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available here; use --device cpu (or auto)")
    return device


class Dreamer(nn.Module):
    def __init__(self, config: Config, obs_space: gym.Space, act_space: gym.Space):
        super().__init__()
        c = self.config = config
        size = c.image_size
        if not (isinstance(obs_space, gym.spaces.Box) and obs_space.shape == (size, size, 3)
                and obs_space.dtype == np.uint8):
            raise ValueError(f"Dreamer expects uint8 observations of shape ({size}, {size}, 3), got {obs_space}")
        if isinstance(act_space, gym.spaces.Discrete):
            self.discrete, self.action_dim = True, int(act_space.n)
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            self.discrete, self.action_dim = False, int(act_space.shape[0])
        else:
            raise ValueError(f"Dreamer supports Discrete or 1-D Box action spaces, got {act_space}")
        self.device = resolve_device(c.device)
        self.world_model = WorldModel(c, self.action_dim)
        feat, stoch = self.world_model.rssm.feat_dim, c.stoch * c.classes
        self.task_behavior = ActorCritic(c, feat, self.action_dim, self.discrete)
        self.intrinsic = make_intrinsic(c, feat, self.action_dim, stoch)
        self.expl_behavior = ActorCritic(c, feat, self.action_dim, self.discrete) if c.expl_behavior else None
        init_weights(self, c.init)
        self.model_opt = AdamWithDecay(self.world_model.parameters(), c.model_lr, c.adam_eps, c.weight_decay)
        self.to(self.device)
        if c.compile:
            # In-place Module.compile keeps the parameter names, so checkpoints load with or without it. The
            # convolutional nets and the MLP heads have static shapes per batch size; the RSSM's time loop stays eager.
            for net in (self.world_model.encoder, self.world_model.decoder, self.world_model.reward_head,
                        self.world_model.discount_head, self.task_behavior.actor, self.task_behavior.critic):
                net.compile()
        self.nonfinite_updates = 0

    # --- acting ------------------------------------------------------------------------------------------------
    def _autocast(self):
        """bf16 autocast for matmuls and convolutions when config.precision == "bf16" (CUDA, or CPUs with AMX /
        AVX512-BF16); losses, distributions and optimiser states stay in fp32."""
        if self.config.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, torch.bfloat16)

    @torch.no_grad()
    def policy(self, obs, state: tuple[State, torch.Tensor] | None = None, training: bool = True,
               is_first=None, sample: bool | None = None,
               latent_mode: bool = False) -> tuple[np.ndarray, tuple[State, torch.Tensor]]:
        """Actions (N, A) for a batch of uint8 frames (N, H, W, 3) (a single frame (H, W, 3) is also accepted).

        `state` is what the previous call returned (None at the start: every row is then a first step);
        `is_first` (N,) marks rows whose episode just started, where the recurrent state is reset.
        Discrete actions come back one-hot. Returns (actions, new_state).
        `training` picks the exploration actor where there is one; `sample` (default: `training`) draws the action
        from the actor's distribution instead of taking its mode, so `training=False, sample=True` is the task
        actor's sampled policy, which evaluation can compare with the greedy one.
        `latent_mode` replaces the posterior's sample z_t by its most likely class in each of the `stoch`
        categoricals (and carries that into the next step), so the policy is a deterministic function of the
        frames. The authors' code has the same switch, `eval_state_mean` (for discrete latents the mode), off by
        default: their evaluation samples the posterior, as `latent_mode=False` does. An evaluation-only
        option (results/carracing-cpu/latent-mode/ compares the two: +42 per CarRacing track on average over
        five agents, episodes below 800 from 104 to 38), never used in training.
        """
        obs = torch.as_tensor(np.asarray(obs), device=self.device)
        if obs.dim() == 3:
            obs = obs[None]
        self.world_model.check_obs(obs)
        n = obs.shape[0]
        if state is None:
            latent = self.world_model.rssm.initial(n, self.device)
            prev_action = torch.zeros(n, self.action_dim, device=self.device)
            is_first = np.ones(n, bool)
        else:
            latent, prev_action = state
        first = torch.as_tensor(np.zeros(n, bool) if is_first is None else np.asarray(is_first, bool),
                                device=self.device)
        with self._autocast():
            embed = self.world_model.embed(obs)
            latent, _ = self.world_model.rssm.obs_step(latent, prev_action, embed, first)
            if latent_mode:
                latent = latent.at_mode()
            behavior = self.expl_behavior if (training and self.expl_behavior is not None) else self.task_behavior
            dist = behavior.actor(latent.feat)
            action = dist.rsample() if (training if sample is None else sample) else dist.mode()
        action = action.float()
        return action.cpu().numpy(), (latent.map(lambda x: x.float()), action)

    # --- learning ----------------------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One update of every learned part from a replay batch (B, T). Returns float metrics.

        A non-finite world-model loss or gradient skips the whole update (nothing is written into the weights);
        such skips are counted in `nonfinite_updates` and reported as a metric.
        """
        c = self.config
        batch = self._check_batch(batch)
        with self._autocast():
            model_loss, post, metrics = self.world_model.loss(batch)
        self.model_opt.zero_grad(set_to_none=True)
        model_loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.world_model.parameters(), c.grad_clip)
        if not (torch.isfinite(model_loss) and torch.isfinite(grad_norm)):
            self.model_opt.zero_grad(set_to_none=True)
            self.nonfinite_updates += 1
            return {"nonfinite_updates": float(self.nonfinite_updates)}
        self.model_opt.step()
        metrics["model_grad_norm"] = grad_norm
        post = post.map(lambda x: x.detach().float())
        with self._autocast():
            if self.intrinsic is not None:
                metrics.update(self.intrinsic.train_step(post, batch["action"], batch["is_first"]))
            start = post.map(lambda x: x.flatten(0, 1))
            cont = 1.0 - batch["is_terminal"].flatten().float()
            task_reward = self._task_reward if (self.intrinsic is None or self.expl_behavior is None) else None
            metrics.update(self.task_behavior.train_step(self.world_model, start, cont, task_reward))
            if self.expl_behavior is not None:
                expl = self.expl_behavior.train_step(self.world_model, start, cont, self._intrinsic_reward)
                metrics.update({f"expl_{k}": v for k, v in expl.items()})
        out = {k: float(v) for k, v in metrics.items()}
        out["nonfinite_updates"] = float(self.nonfinite_updates + out.pop("nonfinite_behavior", 0.0))
        return out

    def _task_reward(self, states: State, actions: torch.Tensor) -> torch.Tensor:
        """Extrinsic reward of the imagined steps, plus the scaled intrinsic reward when one is mixed in."""
        reward = self.config.extrinsic_scale * self.world_model.reward(states.feat[1:]).float()
        if self.intrinsic is not None:
            reward = reward + self._intrinsic_reward(states, actions)
        return reward

    def _intrinsic_reward(self, states: State, actions: torch.Tensor) -> torch.Tensor:
        """Scaled intrinsic reward of the imagined steps; alone, it is the exploration actor's reward (the authors'
        expl_extr_scale = 0). It keeps its gradient with respect to the imagined states and actions (dynamics
        backprop follows novelty), while the predictors' weights stay out of the actor's loss."""
        return self.config.intrinsic_scale * self.intrinsic.imagined_reward(states, actions).float()

    def _check_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keys = ("obs", "action", "reward", "is_first", "is_terminal")
        missing = [k for k in keys if k not in batch]
        if missing:
            raise ValueError(f"batch is missing {missing}; expected keys {keys} (see SequenceReplay.sample)")
        batch = {k: torch.as_tensor(batch[k]).to(self.device, non_blocking=True) for k in keys}
        self.world_model.check_obs(batch["obs"])
        b, t = batch["obs"].shape[:2]
        if batch["action"].shape != (b, t, self.action_dim):
            raise ValueError(f"batch['action'] must have shape (B, T, {self.action_dim}) = {(b, t, self.action_dim)}"
                             f", got {tuple(batch['action'].shape)}")
        for k in ("reward", "is_first", "is_terminal"):
            if batch[k].shape != (b, t):
                raise ValueError(f"batch[{k!r}] must have shape (B, T) = {(b, t)}, got {tuple(batch[k].shape)}")
        batch["action"] = batch["action"].float()
        return batch

    # --- checkpoints -------------------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"model": self.model_opt, "actor": self.task_behavior.actor_opt,
                "critic": self.task_behavior.critic_opt}
        if self.intrinsic is not None:
            opts["intrinsic"] = self.intrinsic.opt
        if self.expl_behavior is not None:
            opts["expl_actor"], opts["expl_critic"] = self.expl_behavior.actor_opt, self.expl_behavior.critic_opt
        return opts

    def checkpoint_state(self) -> dict:
        """Weights, optimiser states and counters, for `torch.save` (loadable with weights_only=True)."""
        return {"modules": self.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "nonfinite_updates": self.nonfinite_updates}

    def load_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state["modules"])
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        self.nonfinite_updates = int(state["nonfinite_updates"])
