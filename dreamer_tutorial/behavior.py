"""Behaviour learning in imagination: the actor-critic of DreamerV2.

From every posterior state of a replay batch, the actor drives the learned prior for H steps. The imagined
trajectory s_0 (the real posterior state), a_0, s_1, ..., a_{H-1}, s_H gets rewards r_{t+1} = reward(s_{t+1})
and discounts d_{t+1} = gamma * P(continue | s_{t+1}) from the world model's heads, values v_t = v(s_t) from
the slow target critic, and lambda-returns (`lambda_return`)

    R_t = r_{t+1} + d_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1}),   R_H = v_H.

Every term of the losses is weighted by w_t = prod_{k <= t} d_k, the predicted probability (times gamma^t) that
the imagined episode is still running, with w_0 = 1 - is_terminal of the start.

    critic:  L = E[ w_t * 0.5 (v(s_t) - sg(R_t))^2 ]
    actor:   L = E[ w_t * ( -rho ln pi(a_t | s_t) sg(R_t - v(s_t))    (REINFORCE, discrete actions)
                            -(1 - rho) R_t                             (dynamics backprop, continuous)
                            -eta H[pi(. | s_t)] ) ]                    (entropy bonus)

The world model is frozen while the actor learns (its parameters do not receive gradients from these losses),
but the imagined states still depend on the actions, which is what dynamics backpropagation differentiates.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from .config import Config
from .networks import mlp
from .rssm import State, sample_one_hot


def lambda_return(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, bootstrap: torch.Tensor,
                  lambda_: float = 0.95) -> torch.Tensor:
    """TD(lambda) returns, time-major. reward, value, discount: (H, ...); bootstrap: (...).

        R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}),   with v_H = R_H = bootstrap.

    `discount` already holds gamma times the continuation probability. lambda = 1 gives the discounted
    Monte-Carlo return bootstrapped at H, lambda = 0 the one-step target r_t + d_t v_{t+1}. Returns (H, ...).
    """
    if not (reward.shape == value.shape == discount.shape and reward.shape[1:] == bootstrap.shape):
        raise ValueError(f"lambda_return expects reward, value, discount of shape (H, ...) and bootstrap (...); "
                         f"got {tuple(reward.shape)}, {tuple(value.shape)}, {tuple(discount.shape)}, "
                         f"{tuple(bootstrap.shape)}")
    next_value = torch.cat([value[1:], bootstrap[None]], 0)
    returns, last = [], bootstrap
    for t in reversed(range(reward.shape[0])):
        last = reward[t] + discount[t] * ((1 - lambda_) * next_value[t] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1], 0)


# --- action distributions ----------------------------------------------------------------------------------------
class OneHotCategorical:
    """Discrete actions as one-hot vectors; `rsample` passes gradients straight through to the probabilities."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits
        self.log_probs = F.log_softmax(logits, -1)

    def rsample(self) -> torch.Tensor:
        probs = self.log_probs.exp()
        return sample_one_hot(probs.detach()) + (probs - probs.detach())

    def mode(self) -> torch.Tensor:
        return F.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).to(self.logits.dtype)

    @staticmethod
    def stack(dists: list[OneHotCategorical]) -> OneHotCategorical:
        return OneHotCategorical(torch.stack([d.logits for d in dists]))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return (action * self.log_probs).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_probs.exp() * self.log_probs).sum(-1)


class TanhNormal:
    """Continuous actions in (-1, 1): a = tanh(u), u ~ Normal(mean, std) per dimension (independent)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.normal = torch.distributions.Normal(mean, std)

    def rsample(self) -> torch.Tensor:
        return torch.tanh(self.normal.rsample())

    def mode(self) -> torch.Tensor:
        return torch.tanh(self.normal.mean)

    @staticmethod
    def stack(dists: list[TanhNormal]) -> TanhNormal:
        return TanhNormal(torch.stack([d.normal.loc for d in dists]), torch.stack([d.normal.scale for d in dists]))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        u = torch.atanh(action.clamp(-0.999999, 0.999999))
        return (self.normal.log_prob(u) - _log_tanh_jacobian(u)).sum(-1)

    def entropy(self) -> torch.Tensor:
        """One-sample estimate: H[a] = H[u] + E[ln(1 - tanh(u)^2)]."""
        u = self.normal.rsample()
        return (self.normal.entropy() + _log_tanh_jacobian(u)).sum(-1)


def _log_tanh_jacobian(u: torch.Tensor) -> torch.Tensor:
    """ln(1 - tanh(u)^2), computed stably as 2 (ln 2 - u - softplus(-2u))."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class Actor(nn.Module):
    def __init__(self, feat_dim: int, action_dim: int, discrete: bool, units: int, layers: int,
                 min_std: float = 0.1):
        super().__init__()
        self.discrete, self.min_std = discrete, min_std
        self.net = mlp(feat_dim, action_dim if discrete else 2 * action_dim, units, layers)

    def forward(self, feat: torch.Tensor) -> OneHotCategorical | TanhNormal:
        out = self.net(feat).float()
        if self.discrete:
            return OneHotCategorical(out)
        mean, std = out.chunk(2, -1)
        return TanhNormal(5.0 * torch.tanh(mean / 5.0), F.softplus(std) + self.min_std)


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily stop parameter gradients of `modules` (activations still carry gradients through them)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


# --- losses --------------------------------------------------------------------------------------------------------
def actor_loss(dist, actions: torch.Tensor, returns: torch.Tensor, baseline: torch.Tensor, weight: torch.Tensor,
               reinforce: float, entropy_scale: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Actor loss over (H, N) imagined steps; `reinforce` in [0, 1] mixes REINFORCE with dynamics backprop."""
    objective = torch.zeros_like(returns)
    if reinforce > 0:
        advantage = (returns - baseline).detach()
        objective = objective + reinforce * dist.log_prob(actions.detach()) * advantage
    if reinforce < 1:
        objective = objective + (1 - reinforce) * returns
    entropy = dist.entropy()
    loss = -(weight * (objective + entropy_scale * entropy)).mean()
    return loss, {"actor_loss": loss.detach(), "actor_entropy": entropy.detach().mean()}


def critic_loss(value: torch.Tensor, returns: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted regression of the critic's value (Normal, unit variance) onto the detached lambda-returns."""
    return (weight * 0.5 * (value - returns.detach()) ** 2).mean()


class ActorCritic(nn.Module):
    """Actor, critic and slow target critic, with their optimisers, trained on imagined trajectories."""

    def __init__(self, config: Config, feat_dim: int, action_dim: int, discrete: bool):
        super().__init__()
        c = self.config = config
        self.discrete = discrete
        self.actor = Actor(feat_dim, action_dim, discrete, c.mlp_units, c.mlp_layers, c.actor_min_std)
        self.critic = mlp(feat_dim, 1, c.mlp_units, c.mlp_layers)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        grad = c.actor_grad if c.actor_grad != "auto" else ("reinforce" if discrete else "dynamics")
        self.reinforce = {"reinforce": 1.0, "dynamics": 0.0, "both": c.actor_grad_mix}[grad]
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), c.actor_lr, eps=c.adam_eps)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), c.critic_lr, eps=c.adam_eps)
        self.updates = 0  # saved with the state dict (get_extra_state)

    def get_extra_state(self) -> dict:
        return {"updates": self.updates}

    def set_extra_state(self, state: dict) -> None:
        self.updates = int(state["updates"])

    def value(self, feat: torch.Tensor, target: bool = False) -> torch.Tensor:
        return (self.target_critic if target else self.critic)(feat).squeeze(-1).float()

    def imagine(self, world_model, start: State, horizon: int):
        """Imagined states (H + 1, N, ...), actions (H, N, A) and the actor's distributions at s_0 .. s_{H-1}
        (batched over (H, N)). The actor sees detached features: its gradient reaches the returns only through
        the actions it picks."""
        dists = []

        def policy(state: State) -> torch.Tensor:
            dists.append(self.actor(state.feat.detach()))
            return dists[-1].rsample()

        states, actions = world_model.rssm.imagine(policy, start, horizon)
        return states, actions, type(dists[0]).stack(dists)

    def train_step(self, world_model, start: State, start_cont: torch.Tensor,
                   reward_fn: Callable[[State, torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One actor and one critic update from start states (N, ...) with continuation flags (N,).

        `reward_fn(states, actions)` gives the (H, N) rewards r_1..r_H; by default the world model's reward head.
        """
        c = self.config
        with frozen(world_model):
            states, actions, dist = self.imagine(world_model, start, c.horizon)
            feat = states.feat
            reward = reward_fn(states, actions) if reward_fn else world_model.reward(feat[1:]).float()
            discount = world_model.discount(feat[1:]).float()
            value = self.value(feat, target=True)
            returns = lambda_return(reward, value[:-1], discount, value[-1], c.lambda_)
            weight = torch.cumprod(torch.cat([start_cont[None].float(), discount[:-1]], 0), 0).detach()
            a_loss, metrics = actor_loss(dist, actions, returns, value[:-1], weight, self.reinforce, c.actor_entropy)
        c_loss = critic_loss(self.value(feat[:-1].detach()), returns, weight)
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (a_loss + c_loss).backward()  # disjoint parameters: the critic loss has detached inputs and targets
        metrics["actor_grad_norm"] = nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip)
        metrics["critic_grad_norm"] = nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip)
        if not (torch.isfinite(metrics["actor_grad_norm"]) and torch.isfinite(metrics["critic_grad_norm"])):
            metrics["nonfinite_behavior"] = torch.ones(())
            return metrics
        self.actor_opt.step()
        self.critic_opt.step()
        self.updates += 1
        if self.updates % c.target_update_every == 0:
            self.target_critic.load_state_dict(self.critic.state_dict())
        metrics.update(critic_loss=c_loss.detach(), imag_reward=reward.detach().mean(),
                       imag_return=returns.detach().mean(), imag_value=value.detach().mean())
        return metrics
