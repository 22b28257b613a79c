"""Behaviour learning in imagination: the actor-critic of DreamerV2.

From every posterior state of a replay batch, the actor drives the learned prior for H steps. The imagined
trajectory s_0 (the real posterior state), a_0, s_1, ..., a_{H-1}, s_H gets rewards r_{t+1} = reward(s_{t+1})
and discounts d_{t+1} = gamma * P(continue | s_{t+1}) from the world model's heads, values v_t = v(s_t) from
the slow target critic, and lambda-returns (`lambda_return`)

    R_t = r_{t+1} + d_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1}),   R_H = v_H.

Every term of the losses is weighted by w_t = prod_{k <= t} d_k, the predicted probability (times gamma^t) that
the imagined episode is still running, with w_0 = 1 - is_terminal of the start.

    critic:  L = E[ w_t * 0.5 (v(s_t) - sg(R_t))^2 ]
    actor:   L = E[ w_t * ( -mix R_t                                       (dynamics backprop, continuous)
                            -(1 - mix) ln pi(a_t | s_t) sg(R_t - v(s_t))   (REINFORCE, discrete actions)
                            -eta H[pi(. | s_t)] ) ]                        (entropy bonus)

with mix = 1 for `actor_grad="dynamics"`, 0 for "reinforce" and `actor_grad_mix` (0.1) for "both", as in the
authors' agent.py. Here a_t is the action chosen at s_t that leads to s_{t+1}; in replay, row t holds the action
that led to x_t, i.e. a_{t-1} in this indexing.

Index convention against the authors' code, which predicts the reward of every state including the start,
reward[t] = r(s_t), and computes target[t] = r(s_t) + d(s_t) ((1 - lambda) v(s_{t+1}) + lambda target[t+1]):
their actor pairs the policy at `feat[:-2]` (s_t) with `seq['action'][1:-1]` (a_t) and `target[1:]` (the return
from s_{t+1} on), which is the role of our R_t. On purpose, our v(s) counts only the rewards after s (the textbook
TD(lambda) form; their critic also counts r(s) of s itself), so R_t bootstraps with v(s_{t+1}) where their
target[t + 1] uses v(s_{t+2}): the same quantity in expectation, not the same numbers. Their weights skip the
continuation of s_t itself (their w_t = gamma w_{t-1} in our terms, for t >= 1); ours include it.

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
from torch.special import ndtr, ndtri

from .config import Config
from .networks import mlp
from .optim import AdamWithDecay
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


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class TruncNormal:
    """Continuous actions in [low, high]: Normal(loc, scale) restricted to that interval, per dimension (DreamerV2).

    With alpha = (low - loc) / scale, beta = (high - loc) / scale and Z = Phi(beta) - Phi(alpha), the density is
    phi((a - loc) / scale) / (scale Z) on [low, high]. `rsample` inverts the CDF, a = loc + scale Phi^-1(Phi(alpha)
    + u Z) with u ~ U(0, 1), so gradients reach loc and scale; then, like the authors' TruncNormalDist, it clips
    the sample to [low + clip, high - clip] with a straight-through gradient. `log_prob` and `entropy` are exact
    (closed form; the authors use TensorFlow Probability's TruncatedNormal, which samples differently but has
    the same density). `loc` must lie in [low, high] (the actor's tanh makes sure of it); the mode is `loc`.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0,
                 clip: float = 1e-6):
        self.loc, self.scale, self.low, self.high, self.clip = loc, scale, low, high, clip
        self.alpha, self.beta = (low - loc) / scale, (high - loc) / scale
        self.log_z = torch.log(ndtr(self.beta) - ndtr(self.alpha))

    def rsample(self) -> torch.Tensor:
        # Keep u away from 0 and 1, where Phi^-1 is infinite. Phi(x) rounds to 1 for x > 5.4 in float32, so above
        # the median invert the upper tail instead: 1 - Phi(x) = Phi(-beta) + (1 - u) Z.
        u = torch.rand_like(self.loc).clamp(1e-7, 1 - 1e-7)
        z = torch.exp(self.log_z)
        lower_cdf = ndtr(self.alpha) + u * z
        upper_cdf = ndtr(-self.beta) + (1 - u) * z
        below_median = lower_cdf < 0.5
        x = torch.where(below_median, ndtri(torch.where(below_median, lower_cdf, 0.5)),
                        -ndtri(torch.where(below_median, 0.5, upper_cdf)))
        sample = self.loc + self.scale * x
        clipped = sample.clamp(self.low + self.clip, self.high - self.clip)
        return sample + (clipped - sample).detach()

    def mode(self) -> torch.Tensor:
        return self.loc

    @staticmethod
    def stack(dists: list[TruncNormal]) -> TruncNormal:
        first = dists[0]
        return TruncNormal(torch.stack([d.loc for d in dists]), torch.stack([d.scale for d in dists]),
                           first.low, first.high, first.clip)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Summed over action dimensions, for actions in [low, high]."""
        x = (action - self.loc) / self.scale
        return (-0.5 * x ** 2 - _LOG_SQRT_2PI - torch.log(self.scale) - self.log_z).sum(-1)

    def entropy(self) -> torch.Tensor:
        """ln(sqrt(2 pi e) scale Z) + (alpha phi(alpha) - beta phi(beta)) / (2 Z), summed over dimensions."""
        def phi(x):
            return torch.exp(-0.5 * x ** 2 - _LOG_SQRT_2PI)

        edges = (self.alpha * phi(self.alpha) - self.beta * phi(self.beta)) / (2 * torch.exp(self.log_z))
        return (_LOG_SQRT_2PI + 0.5 + torch.log(self.scale) + self.log_z + edges).sum(-1)


class TanhNormal:
    """Continuous actions in (-1, 1): a = tanh(u), u ~ Normal(mean, std) per dimension (independent; DreamerV1)."""

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
    """pi(a | s): one-hot categorical for discrete actions; for continuous ones `dist` picks DreamerV2's truncated
    Normal (mean tanh(m), std 2 sigmoid(s / 2) + min_std, in [min_std, 2 + min_std]) or DreamerV1's tanh-Normal
    (mean 5 tanh(m / 5), std softplus(s) + min_std). The authors' `init_std` offset inside the sigmoid is left out:
    its default is 0."""

    def __init__(self, feat_dim: int, action_dim: int, discrete: bool, units: int, layers: int,
                 min_std: float = 0.1, dist: str = "trunc_normal"):
        super().__init__()
        if dist not in ("trunc_normal", "tanh_normal"):
            raise ValueError(f"Actor dist must be trunc_normal or tanh_normal, got {dist!r}")
        self.discrete, self.min_std, self.dist = discrete, min_std, dist
        self.net = mlp(feat_dim, action_dim if discrete else 2 * action_dim, units, layers)

    def forward(self, feat: torch.Tensor) -> OneHotCategorical | TruncNormal | TanhNormal:
        out = self.net(feat).float()
        if self.discrete:
            return OneHotCategorical(out)
        mean, std = out.chunk(2, -1)
        if self.dist == "trunc_normal":
            return TruncNormal(torch.tanh(mean), 2.0 * torch.sigmoid(std / 2.0) + self.min_std)
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
               mix: float, entropy_scale: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Actor loss over (H, N) imagined steps. `mix` in [0, 1] is the weight of dynamics backprop (the returns
    themselves) and 1 - mix that of REINFORCE (log-probability times the detached advantage R_t - v(s_t)): the
    authors' actor_grad_mix. mix = 1 is pure dynamics backprop, mix = 0 pure REINFORCE."""
    objective = torch.zeros_like(returns)
    if mix > 0:
        objective = objective + mix * returns
    if mix < 1:
        advantage = (returns - baseline).detach()
        objective = objective + (1 - mix) * dist.log_prob(actions.detach()) * advantage
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
        self.actor = Actor(feat_dim, action_dim, discrete, c.mlp_units, c.mlp_layers, c.actor_min_std, c.actor_dist)
        self.critic = mlp(feat_dim, 1, c.mlp_units, c.mlp_layers)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        grad = c.actor_grad if c.actor_grad != "auto" else ("reinforce" if discrete else "dynamics")
        self.mix = {"reinforce": 0.0, "dynamics": 1.0, "both": c.actor_grad_mix}[grad]  # weight of dynamics backprop
        self.actor_opt = AdamWithDecay(self.actor.parameters(), c.actor_lr, c.adam_eps, c.weight_decay)
        self.critic_opt = AdamWithDecay(self.critic.parameters(), c.critic_lr, c.adam_eps, c.weight_decay)
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
            a_loss, metrics = actor_loss(dist, actions, returns, value[:-1], weight, self.mix, c.actor_entropy)
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
