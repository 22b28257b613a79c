"""Intrinsic rewards: curiosity (prediction error) and Plan2Explore (ensemble disagreement).

Both predict the next stochastic state z_{t+1} (one-hot, flattened) from the model features s_t and the action
a_t, and both are trained on REAL transitions from the replay buffer (posterior states), never on imagined ones.

    curiosity      r_int(s_t, a_t) = mean_i (g(s_t, a_t)_i - z_{t+1, i})^2          one predictor g
    Plan2Explore   r_int(s_t, a_t) = mean_i Std_k[ g_k(s_t, a_t)_i ]                 ensemble g_1..g_K
                   (its log with `config.disag_log`)

Curiosity needs the true next latent, so in imagination it scores how surprising the imagined z_{t+1} is to the
predictor. Plan2Explore needs no target: members agree where they were trained and disagree on novel
transitions, which makes it an estimate of epistemic uncertainty (Sekar et al., 2020). Both return one reward
PER SAMPLE, shape (batch,): the seed notebook instead pushed a (1, 1) scalar error into a Linear(32, 1) layer and
crashed on the shape mismatch.

The rewards are differentiable with respect to their inputs (features, action, next latent) but not the
predictors' weights (`frozen`): computed inside the actor's imagination, as in the authors' `expl.py`, a
continuous-action actor trained by dynamics backpropagation follows the gradient of novelty through the imagined
states and actions, while the actor's loss never trains the predictors (only `train_step` on replay does).

Where this follows the authors' code (danijar/dreamerv2, `expl.py` and `configs.yaml`) and where it does not:
- Disagreement is the STANDARD DEVIATION across members (population, divided by K), averaged over the
  dimensions, optionally its log (`disag_log`, off by default), as in the code. The Plan2Explore paper writes
  the VARIANCE; the std is its square root, with the units of the predictions.
- The code passes the disagreement through a `StreamNorm` with momentum 1.0 (`expl_reward_norm`), which keeps
  its running magnitude at the initial 1: the reward is divided by 1 + 1e-8, i.e. not normalised. So there is
  no normalisation here, and `Config.intrinsic_scale` defaults to the code's `expl_intr_scale` = 1. The
  exploration actor (`expl_behavior`) sees the intrinsic reward alone, the code's `expl_extr_scale` = 0.
- Target and inputs: next stochastic state (`disag_target: stoch`, `disag_offset: 1`) from features and action
  (`disag_action_cond: True`), as in the code, with one difference: the code concatenates the action stored in
  the same replay row, the one that LED TO s_t; here the action is the one TAKEN in s_t (the paper's
  q(z_{t+1} | s_t, a_t)), so the reward of an imagined step depends directly on the action the actor chose.
- The predictors are MLPs with the config's `mlp_units` x `mlp_layers` (4 x 400 ELU in the code's `expl_head`)
  fitted by mean squared error; the code's curiosity variant (`ModelLoss`) instead regresses the world model's
  KL, which this package does not do.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .behavior import frozen
from .config import Config
from .networks import mlp
from .optim import AdamWithDecay
from .rssm import State


class EnsembleLinear(nn.Module):
    """K independent linear layers applied in one batched matmul: (K, N, inp) -> (K, N, out)."""

    def __init__(self, members: int, inp: int, out: int):
        super().__init__()
        bound = 1 / math.sqrt(inp)
        self.weight = nn.Parameter(torch.empty(members, inp, out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def ensemble_mlp(members: int, inp: int, out: int, units: int, layers: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [EnsembleLinear(members, inp, units), nn.ELU()]
        inp = units
    modules.append(EnsembleLinear(members, inp, out))
    return nn.Sequential(*modules)


class _LatentPredictor(nn.Module):
    """Shared plumbing: inputs [s_t, a_t], target z_{t+1}, training on replay transitions."""

    def __init__(self, config: Config, feat_dim: int, action_dim: int, target_dim: int):
        super().__init__()
        self.config = config
        self.feat_dim, self.action_dim, self.target_dim = feat_dim, action_dim, target_dim

    def _check(self, feat: torch.Tensor, action: torch.Tensor) -> None:
        wrong_dims = feat.shape[-1] != self.feat_dim or action.shape[-1] != self.action_dim
        if wrong_dims or feat.shape[:-1] != action.shape[:-1]:
            raise ValueError(f"expected feat (..., {self.feat_dim}) and action (..., {self.action_dim}) with the same "
                             f"leading dims, got {tuple(feat.shape)} and {tuple(action.shape)}")

    def train_step(self, post: State, action: torch.Tensor, is_first: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fit the predictor(s) on the real transitions (s_t, a_{t+1}) -> z_{t+1} of a replay batch (B, T).

        In replay, action[:, t + 1] is the action taken in state t; pairs that cross an episode start are masked.
        """
        feat = post.feat[:, :-1].detach()
        target = post.stoch[:, 1:].flatten(-2).detach()
        mask = (~is_first[:, 1:].bool()).float()
        error = self.prediction_error(feat, action[:, 1:].detach(), target)
        loss = (error * mask).sum() / mask.sum().clamp(min=1.0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        self.opt.step()
        return {"intrinsic_model_loss": loss.detach()}

    def imagined_reward(self, states: State, actions: torch.Tensor) -> torch.Tensor:
        """Rewards (H, N) for the imagined transitions (s_t, a_t) -> s_{t+1}, t = 0 .. H - 1."""
        return self.reward(states.feat[:-1], actions, states.stoch[1:].flatten(-2))


class Curiosity(_LatentPredictor):
    def __init__(self, config: Config, feat_dim: int, action_dim: int, target_dim: int):
        super().__init__(config, feat_dim, action_dim, target_dim)
        self.predictor = mlp(feat_dim + action_dim, target_dim, config.mlp_units, config.mlp_layers)
        self.opt = AdamWithDecay(self.parameters(), config.intrinsic_lr, config.adam_eps, config.weight_decay)

    def prediction_error(self, feat, action, target) -> torch.Tensor:
        """Per-sample squared error, mean over the target's dimensions: (...,)."""
        pred = self.predictor(torch.cat([feat, action], -1))
        return ((pred - target) ** 2).mean(-1)

    def reward(self, feat: torch.Tensor, action: torch.Tensor, next_stoch: torch.Tensor) -> torch.Tensor:
        """Intrinsic reward per sample (...,): the predictor's error on the transition (differentiable in the
        inputs, not in the predictor's weights)."""
        self._check(feat, action)
        with frozen(self):
            return self.prediction_error(feat, action, next_stoch)


def disagreement(predictions: torch.Tensor, log: bool = False) -> torch.Tensor:
    """(K, ..., D) member predictions -> (...,): standard deviation across the K members (population), mean over
    D; its natural log when `log` (the authors' `disag_log`)."""
    spread = predictions.std(0, correction=0).mean(-1)
    return spread.log() if log else spread


class Plan2Explore(_LatentPredictor):
    def __init__(self, config: Config, feat_dim: int, action_dim: int, target_dim: int):
        super().__init__(config, feat_dim, action_dim, target_dim)
        self.members = config.ensemble_size
        self.ensemble = ensemble_mlp(self.members, feat_dim + action_dim, target_dim, config.mlp_units,
                                     config.mlp_layers)
        self.opt = AdamWithDecay(self.parameters(), config.intrinsic_lr, config.adam_eps, config.weight_decay)

    def predict(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Every member's prediction: (K, ..., target_dim)."""
        x = torch.cat([feat, action], -1)
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)
        return self.ensemble(x).reshape(self.members, *lead, self.target_dim)

    def prediction_error(self, feat, action, target) -> torch.Tensor:
        """Squared error summed over members, mean over dimensions: (...,)."""
        return ((self.predict(feat, action) - target) ** 2).mean(-1).sum(0)

    def reward(self, feat: torch.Tensor, action: torch.Tensor, next_stoch: torch.Tensor | None = None) -> torch.Tensor:
        """Disagreement per sample (...,), needs no target (differentiable in the inputs, not in the weights)."""
        self._check(feat, action)
        with frozen(self):
            return disagreement(self.predict(feat, action), self.config.disag_log)


def make_intrinsic(config: Config, feat_dim: int, action_dim: int, target_dim: int) -> _LatentPredictor | None:
    """The module that `config.intrinsic` names, or None."""
    kinds = {"none": None, "curiosity": Curiosity, "plan2explore": Plan2Explore}
    cls = kinds[config.intrinsic]
    return cls(config, feat_dim, action_dim, target_dim) if cls else None
