"""Graders of lesson 08 (CarRacing): update counts, replay memory, episode returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._core import call_learner, check_function, fail, passed


def reference_num_updates(steps: int, prefill: int, train_every: int) -> int:
    """Gradient updates that `train()` makes: one per `train_every` policy steps once `prefill` is collected."""
    return max(0, (steps - prefill) // train_every)


def reference_replay_bytes(capacity: int, image_size: int, action_dim: int) -> int:
    return capacity * (image_size * image_size * 3 + 4 * action_dim + 4 + 2)


def reference_episode_returns(reward: torch.Tensor, is_first: torch.Tensor) -> torch.Tensor:
    starts = torch.nonzero(is_first).flatten().tolist()
    return torch.stack([reward[a:b].sum() for a, b in zip(starts, starts[1:])]) if len(starts) > 1 else \
        reward.new_zeros(0)


def _integer_check(learner: Callable, reference: Callable, cases: Sequence[tuple], name: str, hint: str) -> None:
    for args in cases:
        got = call_learner(name, learner, *args, hint=hint, context=f"for arguments {args}")
        if got != reference(*args):
            fail(name, f"wrong result for arguments {args}.", hint)
    passed(name, learner)


def check_num_updates(fn: Callable) -> None:
    cases = [(100_000, 5_000, 16), (1_000, 200, 10), (500, 500, 5), (100, 200, 10), (1_234, 34, 7)]
    _integer_check(fn, reference_num_updates, cases, "num_updates",
                   "no updates before prefill; count whole multiples of train_every after it")


def check_replay_bytes(fn: Callable) -> None:
    cases = [(1_000, 64, 3), (200_000, 64, 3), (10, 32, 6), (1, 64, 18)]
    _integer_check(fn, reference_replay_bytes, cases, "replay_bytes",
                   "3 bytes per pixel (uint8 RGB), 4 bytes per float32, 1 byte per bool")


def check_episode_returns(fn: Callable) -> None:
    def make_inputs(g):
        n = int(torch.randint(20, 60, (1,), generator=g))
        is_first = torch.rand(n, generator=g) < 0.15
        is_first[0] = True
        reward = torch.randn(n, generator=g) * torch.logical_not(is_first)
        return reward, is_first

    check_function(fn, reference_episode_returns, make_inputs, name="episode_returns", trials=5,
                   hint="an episode runs from one is_first row up to (not including) the next; the last, "
                        "unfinished one does not count")
