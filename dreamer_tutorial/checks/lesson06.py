"""Graders of lesson 06 (intrinsic reward): curiosity, transition pairs, ensemble disagreement."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import check_function, fail


def reference_disagreement(predictions: torch.Tensor) -> torch.Tensor:
    """Plan2Explore as in the authors' code: (K, N, D) member predictions -> (N,) population standard deviation
    over K, mean over D."""
    return predictions.std(0, correction=0).mean(-1)


def reference_transition_pairs(feat: torch.Tensor, action: torch.Tensor, stoch: torch.Tensor,
                               is_first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training pairs of the intrinsic predictors from a replay window (B, T): inputs [s_t, a_{t+1}] (the action
    stored in row t + 1 is the one taken in state t), targets flatten(z_{t+1}), and a mask that drops the pairs
    whose second row starts a new episode. Shapes (B, T - 1, F + A), (B, T - 1, S * C), (B, T - 1)."""
    inputs = torch.cat([feat[:, :-1], action[:, 1:]], -1)
    return inputs, stoch[:, 1:].flatten(-2), (~is_first[:, 1:].bool()).float()


def check_transition_pairs(fn: Callable) -> None:
    def make_inputs(g):
        b, t, s, c = 4, 10, 4, 5
        stoch = torch.nn.functional.one_hot(torch.randint(0, c, (b, t, s), generator=g), c).float()
        return (torch.randn(b, t, 20, generator=g), torch.randn(b, t, 3, generator=g), stoch,
                torch.rand(b, t, generator=g) < 0.2)
    check_function(fn, reference_transition_pairs, make_inputs, name="transition_pairs",
                   hint="row t + 1 of the replay holds the action that LED TO x_{t+1}, i.e. the one taken in state "
                   "t; predict row t + 1's latent (flattened) from row t's features and that action; a pair is "
                   "invalid when row t + 1 starts a new episode")


def reference_curiosity_reward(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean(-1)


def check_disagreement(fn: Callable) -> None:
    name = "disagreement"
    hint = ("the spread across the ensemble members (axis 0, dividing by K) that the exercise defines, then the "
            "mean over the predicted dimensions: one number per sample, differentiable")
    predictions = torch.randn(10, 32, 64, generator=torch.Generator().manual_seed(1))
    try:
        out = torch.as_tensor(fn(predictions.clone())).detach().float()
    except Exception:  # a crash or a missing implementation is reported by check_function below
        out = None
    variance = predictions.var(0, correction=0).mean(-1)
    if out is not None and out.shape == variance.shape and torch.allclose(out, variance, rtol=1e-4, atol=1e-5):
        fail(name, "your values are the variance across the members, the Plan2Explore paper's measure; this "
                    "exercise asks for the spread that the authors' code rewards (reread its equation).", hint)
    check_function(fn, reference_disagreement, lambda g: (torch.randn(10, 32, 64, generator=g),),
                   name=name, grad_inputs=(0,), hint=hint)


def check_curiosity_reward(fn: Callable) -> None:
    check_function(fn, reference_curiosity_reward,
                   lambda g: (torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)),
                   name="curiosity_reward", grad_inputs=(0, 1), hint="one reward PER SAMPLE: squared error "
                   "averaged over the latent dimensions only (this is exactly the seed notebook's shape bug)")
