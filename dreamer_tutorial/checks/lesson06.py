"""Graders of lesson 06 (intrinsic reward): curiosity, transition pairs, ensemble disagreement.

Each grader first looks for the typical mistakes on one fixed input (the paper's variance instead of the code's
standard deviation, K - 1 instead of K, an action or a mask taken from the wrong replay row, ...) and names them,
then compares values, shapes and gradients with the reference on random inputs (`check_function`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ._core import call_learner, check_function, fail


def _first_match(name: str, out, mistakes: Iterable[tuple[torch.Tensor, str]], hint: str) -> None:
    """Fail with the description of the first known mistake whose output equals the learner's `out`."""
    mine = torch.as_tensor(out).detach().float()
    for wrong, what in mistakes:
        if mine.shape == wrong.shape and torch.allclose(mine, wrong.float(), rtol=1e-4, atol=1e-5):
            fail(name, what, hint)


# --- exercise 1: the curiosity reward ------------------------------------------------------------------------------
def reference_curiosity_reward(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, D) predicted and actual next latents -> (N,): the squared error of each sample, mean over D."""
    return ((pred - target) ** 2).mean(-1)


def check_curiosity_reward(fn: Callable) -> None:
    name = "curiosity_reward"
    hint = ("one reward PER SAMPLE: squared error averaged over the latent dimensions only (this is exactly the "
            "seed notebook's shape bug)")
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)
    out = call_learner(name, fn, pred.clone(), target.clone(), hint=hint)
    _first_match(name, out, [(((pred - target) ** 2).sum(-1), "your rewards are D times too large: the squared "
                               "errors are summed over the dimensions instead of averaged.")], hint)
    check_function(fn, reference_curiosity_reward,
                   lambda g: (torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)),
                   name=name, grad_inputs=(0, 1), hint=hint)


# --- exercise 2: training pairs from a replay window ---------------------------------------------------------------
def reference_transition_pairs(feat: torch.Tensor, action: torch.Tensor, stoch: torch.Tensor,
                               is_first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training pairs of the intrinsic predictors from a replay window (B, T): inputs [s_t, a_{t+1}] (the action
    stored in row t + 1 is the one taken in state t), targets flatten(z_{t+1}), and a mask that drops the pairs
    whose second row starts a new episode. Shapes (B, T - 1, F + A), (B, T - 1, S * C), (B, T - 1)."""
    inputs = torch.cat([feat[:, :-1], action[:, 1:]], -1)
    return inputs, stoch[:, 1:].flatten(-2), (~is_first[:, 1:].bool()).float()


def _replay_window(g: torch.Generator):
    b, t, s, c = 4, 10, 4, 5
    stoch = torch.nn.functional.one_hot(torch.randint(0, c, (b, t, s), generator=g), c).float()
    return (torch.randn(b, t, 20, generator=g), torch.randn(b, t, 3, generator=g), stoch,
            torch.rand(b, t, generator=g) < 0.2)


def _pair_mistakes(feat, action, stoch, is_first):
    """For each output of the exercise: (wrong output, what is wrong) of the typical mistakes."""
    first = is_first.float()
    return (
        [(torch.cat([feat[:, :-1], action[:, :-1]], -1), "the action in the inputs is off by one step: it is the "
          "one stored in row t, which LED TO s_t, not the one taken in s_t."),
         (torch.cat([feat[:, 1:], action[:, 1:]], -1), "the features in the inputs are off by one step: they are "
          "those of the next state s_{t+1}, the state the predictor has to predict."),
         (torch.cat([action[:, 1:], feat[:, :-1]], -1), "the inputs hold the right values in the wrong order: the "
          "predictors' first layer expects the features first, then the action.")],
        [(stoch[:, :-1].flatten(-2), "the targets are off by one step: they are z_t, the latent of the state the "
          "pair starts from, not the next one.")],
        [(1 - first[:, :-1], "the mask is off by one step: it looks at row t, but a pair is broken when its SECOND "
          "row starts a new episode."),
         (torch.ones_like(first[:, 1:]), "the mask keeps every pair: a pair whose second row starts a new episode "
          "(is_first) must be dropped, its 'next' state belongs to another episode."),
         (first[:, 1:], "the mask is inverted: it is 1 exactly on the pairs that cross an episode start.")],
    )


def check_transition_pairs(fn: Callable) -> None:
    name = "transition_pairs"
    hint = ("row t + 1 of the replay holds the action that LED TO x_{t+1}, i.e. the one taken in state t; predict "
            "row t + 1's latent (flattened) from row t's features and that action; a pair is invalid when row t + 1 "
            "starts a new episode")
    window = _replay_window(torch.Generator().manual_seed(7))
    out = call_learner(name, fn, *window, hint=hint)
    expected = reference_transition_pairs(*window)
    if isinstance(out, (tuple, list)) and len(out) == len(expected):
        for mine, right, mistakes in zip(out, expected, _pair_mistakes(*window), strict=True):
            mine = torch.as_tensor(mine).detach().float()
            if mine.shape != right.shape or not torch.allclose(mine, right.float()):
                _first_match(name, mine, mistakes, hint)
    check_function(fn, reference_transition_pairs, _replay_window, name=name, hint=hint)


# --- exercise 3: disagreement --------------------------------------------------------------------------------------
def reference_disagreement(predictions: torch.Tensor) -> torch.Tensor:
    """Plan2Explore as in the authors' code: (K, N, D) member predictions -> (N,) population standard deviation
    over K, mean over D."""
    return predictions.std(0, correction=0).mean(-1)


def check_disagreement(fn: Callable) -> None:
    name = "disagreement"
    hint = ("the spread across the ensemble members (axis 0, dividing by K) that the exercise defines, then the "
            "mean over the predicted dimensions: one number per sample, differentiable")
    predictions = torch.randn(10, 32, 64, generator=torch.Generator().manual_seed(1))
    out = call_learner(name, fn, predictions.clone(), hint=hint)
    _first_match(name, out, [
        (predictions.var(0, correction=0).mean(-1), "your values are the variance across the members, the "
         "Plan2Explore paper's measure; this exercise asks for the spread that the authors' code rewards (reread "
         "its equation)."),
        (predictions.std(0).mean(-1), "your spread divides by K - 1 (the sample estimate, torch's default); the "
         "exercise's divides by the number of members K."),
        (predictions.mean(-1).std(0, correction=0), "you average over the D dimensions before measuring the "
         "spread across the members: the members can disagree on every dimension and still have equal averages."),
    ], hint)
    check_function(fn, reference_disagreement, lambda g: (torch.randn(10, 32, 64, generator=g),),
                   name=name, grad_inputs=(0,), hint=hint)
