"""Graders of lesson 01 (environment): frame resizing, CarRacing's action map, discounted returns."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import check_function


def reference_resize_frame(frame: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average downsampling by an integer factor: uint8 (H, W, C) -> float (H / factor, W / factor, C).

    Each output pixel is the mean of a factor x factor block (no rounding). For integer factors this is what
    PIL's BOX filter (used by `envs.ResizeObservation`) computes before rounding to uint8.
    """
    h, w, c = frame.shape
    return frame.float().reshape(h // factor, factor, w // factor, factor, c).mean((1, 3))


def check_resize_frame(fn: Callable) -> None:
    def make_inputs(g):
        factor = [2, 3, 4][int(torch.randint(0, 3, (1,), generator=g))]
        frame = torch.randint(0, 256, (96, 96, 3), generator=g, dtype=torch.uint8)
        frame[40:60, :, 1] = 255  # a bright horizontal stripe whose edge falls inside blocks for factor 3
        return frame, factor
    check_function(fn, reference_resize_frame, make_inputs, name="resize_frame", trials=6, atol=1e-3,
                   hint="(H, W, 3) uint8 -> (H / f, W / f, 3) float: every output pixel is the mean of one f x f "
                   "block of input pixels, per channel; convert to float before averaging and do not round")


def reference_carracing_action(action: torch.Tensor) -> torch.Tensor:
    """Policy action in [-1, 1]^3 (clipped) -> CarRacing's (steer in [-1, 1], gas in [0, 1], brake in [0, 1])."""
    a = action.clamp(-1, 1)
    return torch.stack([a[..., 0], (a[..., 1] + 1) / 2, (a[..., 2] + 1) / 2], -1)


def reference_discounted_return(reward: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = r_t + gamma R_{t+1} over the last axis (R after the last step is 0)."""
    out, running = torch.zeros_like(reward), torch.zeros_like(reward[..., 0])
    for t in reversed(range(reward.shape[-1])):
        running = reward[..., t] + gamma * running
        out[..., t] = running
    return out


def check_carracing_action(fn: Callable) -> None:
    check_function(fn, reference_carracing_action, lambda g: (torch.randn(16, 3, generator=g) * 1.5,),
                   name="carracing_action", hint="steer keeps its range; gas and brake map [-1, 1] linearly onto "
                   "[0, 1]; clip the policy's action to [-1, 1] first")


def check_discounted_return(fn: Callable) -> None:
    def make_inputs(g):
        return torch.randn(4, 20, generator=g), float(torch.rand(1, generator=g) * 0.5 + 0.5)
    check_function(fn, reference_discounted_return, make_inputs, name="discounted_return",
                   hint="work backwards from the last step; the return after the last step is 0")
