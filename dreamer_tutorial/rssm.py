"""The Recurrent State-Space Model of DreamerV2 with categorical latents.

The model state has two parts:

* a deterministic recurrent state h_t (a GRU with LayerNorm), which carries memory, and
* a stochastic state z_t made of `stoch` categorical variables with `classes` classes each, stored one-hot.

    recurrent model       h_t = f(h_{t-1}, z_{t-1}, a_t)          `img_step` (deterministic part)
    prior (transition)    z_t ~ p(z_t | h_t)                      `img_step` (stochastic part)
    posterior             z_t ~ q(z_t | h_t, e_t), e_t = enc(x_t)  `obs_step`

Alignment (shared with the replay buffer): a_t is the action that LED TO observation x_t, so a step combines
the previous state with the action taken from it. At the first step of an episode (`is_first`) the previous
state and action are reset to zero before the step, so nothing leaks across episode boundaries.

Samples are one-hot with straight-through gradients: forward value one-hot(sample), gradient that of the class
probabilities, so the world model can be trained by backpropagation through discrete latents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class State(NamedTuple):
    """A (batch of) RSSM state(s). `stoch` is one-hot (..., stoch, classes); `logits` are its distribution's."""

    deter: torch.Tensor  # (..., deter)
    stoch: torch.Tensor  # (..., stoch, classes)
    logits: torch.Tensor  # (..., stoch, classes)

    @property
    def feat(self) -> torch.Tensor:
        """Model features [h_t, flatten(z_t)] used by every head, the actor and the critic."""
        return torch.cat([self.deter, self.stoch.flatten(-2)], -1)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
        """Apply `fn` to every tensor (e.g. `lambda x: x.detach()` or `lambda x: x[:, 0]`)."""
        return State(*(fn(x) for x in self))

    def at_mode(self) -> State:
        """The same state with z_t at each categorical's most likely class (one-hot of the logits' argmax)."""
        mode = torch.nn.functional.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).to(self.stoch.dtype)
        return State(self.deter, mode, self.logits)

    @staticmethod
    def stack(states: list[State], dim: int) -> State:
        return State(*(torch.stack(xs, dim) for xs in zip(*states, strict=True)))


def sample_one_hot(probs: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot samples from categoricals with probabilities `probs` (..., classes), by inverting the CDF with
    one uniform number per variable (cheaper than torch.multinomial for many small categoricals). `u` (..., 1)
    gives those numbers; by default they are drawn here."""
    if u is None:
        u = torch.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype)
    index = (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)
    return F.one_hot(index, probs.shape[-1]).to(probs.dtype)


def straight_through_sample(logits: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot sample from Categorical(logits) over the last dim; gradient flows to the logits via the probs.
    `u` as in `sample_one_hot`."""
    probs = logits.softmax(-1)
    return sample_one_hot(probs.detach(), u) + (probs - probs.detach())  # one-hot forward, grad of probs backward


class LayerNormGRUCell(nn.Module):
    """GRU cell with LayerNorm on the gate pre-activations (DreamerV2's `GRUCell(norm=True)`).

        r, c, u = split(LayerNorm(W [x, h]))
        r = sigmoid(r); c = tanh(r * c); u = sigmoid(u - 1)
        h' = u * c + (1 - u) * h

    The -1 bias on the update gate makes the cell keep its state by default at initialisation.
    """

    def __init__(self, inp: int, size: int):
        super().__init__()
        self.size = size
        self.linear = nn.Linear(inp + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    def __init__(self, embed_dim: int, action_dim: int, deter: int = 600, hidden: int = 600, stoch: int = 32,
                 classes: int = 32):
        super().__init__()
        self.embed_dim, self.action_dim = embed_dim, action_dim
        self.deter_dim, self.stoch_dim, self.classes = deter, stoch, classes
        self.img_in = nn.Sequential(nn.Linear(stoch * classes + action_dim, hidden), nn.ELU())
        self.cell = LayerNormGRUCell(hidden, deter)
        self.img_out = nn.Sequential(nn.Linear(deter, hidden), nn.ELU(), nn.Linear(hidden, stoch * classes))
        self.obs_out = nn.Sequential(nn.Linear(deter + embed_dim, hidden), nn.ELU(),
                                     nn.Linear(hidden, stoch * classes))

    @property
    def feat_dim(self) -> int:
        return self.deter_dim + self.stoch_dim * self.classes

    def initial(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The all-zero state used at the start of every episode."""
        device = device or next(self.parameters()).device
        zeros = torch.zeros(batch_size, self.stoch_dim, self.classes, device=device)
        return State(torch.zeros(batch_size, self.deter_dim, device=device), zeros, zeros)

    def _stochastic(self, deter: torch.Tensor, logits: torch.Tensor) -> State:
        logits = logits.reshape(*logits.shape[:-1], self.stoch_dim, self.classes)
        return State(deter, straight_through_sample(logits), logits)

    def img_step(self, prev: State, action: torch.Tensor) -> State:
        """Prior step: h_t = f(h_{t-1}, z_{t-1}, a_t), z_t ~ p(z_t | h_t)."""
        x = self.img_in(torch.cat([prev.stoch.flatten(-2), action], -1))
        deter = self.cell(x, prev.deter)
        return self._stochastic(deter, self.img_out(deter))

    def obs_step(self, prev: State, action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor | None = None) -> tuple[State, State]:
        """Posterior step: returns (posterior, prior) for one time step.

        `is_first` (batch,) resets the previous state and action to zeros where it is true.
        """
        if is_first is not None:
            keep = (~is_first.bool()).to(action.dtype).unsqueeze(-1)
            prev = State(prev.deter * keep, prev.stoch * keep.unsqueeze(-1), prev.logits * keep.unsqueeze(-1))
            action = action * keep
        prior = self.img_step(prev, action)
        logits = self.obs_out(torch.cat([prior.deter, embed], -1))
        return self._stochastic(prior.deter, logits), prior

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None) -> tuple[State, State]:
        """Filter a batch of sequences. Inputs are batch-major: embed (B, T, E), action (B, T, A), is_first (B, T).

        Returns (posterior, prior) States with tensors of shape (B, T, ...).

        The same function as a loop of `obs_step`, with the same random numbers, arranged for speed: only what
        the next step needs stays in the loop (the GRU step and the posterior sample). The posterior layer's
        product with the embeddings, W_e e_t + b of W [h_t, e_t] + b, runs once for all steps before the loop; the
        prior's head runs once for all steps after it, since the prior is only compared with the posterior and
        never fed back. Its uniform numbers are drawn inside the loop, before the posterior's, as `obs_step` draws
        them, so a seeded run samples what the loop of `obs_step` would (tests/test_world_model.py). On a
        `carracing_cpu` batch it takes about a third less time forward and backward (results/throughput.md).
        """
        if embed.dim() != 3 or action.shape[:2] != embed.shape[:2] or is_first.shape != embed.shape[:2]:
            raise ValueError(f"observe expects embed (B, T, E), action (B, T, A), is_first (B, T); got "
                             f"{tuple(embed.shape)}, {tuple(action.shape)}, {tuple(is_first.shape)}")
        state = state if state is not None else self.initial(embed.shape[0], embed.device)
        keep = (~is_first.bool()).to(action.dtype).unsqueeze(-1)  # (B, T, 1): 0 resets the step's inputs
        action = action * keep
        first, head = self.obs_out[0], self.obs_out[1:]
        w_deter, w_embed = first.weight.split([self.deter_dim, self.embed_dim], 1)
        embed_part = F.linear(embed, w_embed, first.bias)  # (B, T, hidden)
        deter, stoch = state.deter, state.stoch.flatten(-2)
        deters, stochs, logits, prior_u = [], [], [], []
        for t in range(embed.shape[1]):
            deter = self.cell(self.img_in(torch.cat([stoch * keep[:, t], action[:, t]], -1)), deter * keep[:, t])
            post_logits = head(embed_part[:, t] + F.linear(deter, w_deter))
            post_logits = post_logits.reshape(-1, self.stoch_dim, self.classes)
            probs = post_logits.softmax(-1)  # straight_through_sample, with the prior's draw first as in obs_step
            prior_u.append(torch.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype))
            sample = sample_one_hot(probs.detach()) + (probs - probs.detach())
            stoch = sample.flatten(-2)
            deters.append(deter)
            stochs.append(sample)
            logits.append(post_logits)
        deter = torch.stack(deters, 1)
        prior_logits = self.img_out(deter).reshape(*deter.shape[:2], self.stoch_dim, self.classes)
        prior = State(deter, straight_through_sample(prior_logits, torch.stack(prior_u, 1)), prior_logits)
        return State(deter, torch.stack(stochs, 1), torch.stack(logits, 1)), prior

    def imagine(self, policy: Callable[[State], torch.Tensor], start: State,
                horizon: int) -> tuple[State, torch.Tensor]:
        """Roll the prior forward `horizon` steps from `start` (batch (N, ...)), choosing actions with `policy`.

        Returns the states (horizon + 1, N, ...) time-major, index 0 being `start`, and the actions
        (horizon, N, A), where actions[t] is the action taken in state t (leading to state t + 1).
        """
        states, actions, state = [start], [], start
        for _ in range(horizon):
            action = policy(state)
            state = self.img_step(state, action)
            states.append(state)
            actions.append(action)
        return State.stack(states, 0), torch.stack(actions, 0)

    def imagine_actions(self, start: State, actions: torch.Tensor) -> State:
        """Open-loop prediction: apply given actions (N, T, A) from `start`; returns priors (N, T, ...)."""
        states, state = [], start
        for t in range(actions.shape[1]):
            state = self.img_step(state, actions[:, t])
            states.append(state)
        return State.stack(states, 1)
