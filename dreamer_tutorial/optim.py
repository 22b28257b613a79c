"""Adam with DreamerV2's weight decay.

The authors' optimiser (`common.Optimizer` in their tfutils.py) computes the gradients, clips them by their global
norm, then shrinks every variable of the trained modules, biases and LayerNorm parameters included,

    theta <- (1 - wd) * theta

and only then applies the Adam step with the clipped gradients (computed at the weights before the shrink). The
decay is NOT multiplied by the learning rate, unlike `torch.optim.AdamW` (theta <- (1 - lr * wd) * theta).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class AdamWithDecay(torch.optim.Adam):
    """`torch.optim.Adam` that multiplies every parameter by (1 - weight_decay) before each Adam step.

    With weight_decay = 0 it is plain Adam. The decay is kept outside the parameter groups, so the state dict is
    exactly Adam's (checkpoints load either way) and the decay always comes from the config; so do the learning
    rate and epsilon, also after `load_state_dict`.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, eps: float, weight_decay: float = 0.0):
        if not 0.0 <= weight_decay < 1.0:
            raise ValueError(f"weight_decay must lie in [0, 1), got {weight_decay!r}")
        super().__init__(params, lr, eps=eps)
        self.weight_decay = weight_decay

    def load_state_dict(self, state_dict: dict) -> None:
        """Adam's moments and step counts from `state_dict`, but the learning rate and epsilon this optimiser was
        built with. torch's `load_state_dict` would restore the saved ones too, so a run resumed with a new
        learning rate (`--resume --actor_lr 2e-5`) would silently keep training at the old one."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group.update(lr=self.defaults["lr"], eps=self.defaults["eps"])

    def scale_lr(self, factor: float) -> None:
        """Learn at `factor` times the learning rate this optimiser was built with (1.0: back to it)."""
        for group in self.param_groups:
            group["lr"] = self.defaults["lr"] * factor

    def __getstate__(self) -> dict:  # torch's Optimizer pickles only its own fields: keep the decay on copies
        return {**super().__getstate__(), "weight_decay": self.weight_decay}

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("AdamWithDecay.step takes no closure: compute the gradients first, then call step()")
        if self.weight_decay:
            for group in self.param_groups:
                for param in group["params"]:
                    param.mul_(1.0 - self.weight_decay)
        return super().step()
