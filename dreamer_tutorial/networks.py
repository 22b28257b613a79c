"""The building blocks: MLP, the convolutional encoder and decoder of DreamerV2, and a distribution head.

Encoder: 4 convolutions with kernel 4 and stride 2, channels d*(1, 2, 4, 8), ELU. A 64x64 frame shrinks to
31, 14, 6, then 2 pixels a side, so the embedding has 8d * 2 * 2 = 32d features (1536 for the paper's d = 48).
Decoder: the mirror image with transposed convolutions of kernels 5, 5, 6, 6 (1 -> 5 -> 13 -> 30 -> 64 pixels);
its output is the mean of a unit-variance Normal over pixels scaled to [-0.5, 0.5].

Initialisation: torch's defaults unless `init_weights(module, "glorot")` re-initialises a built model the way the
authors' Keras layers start (`Config.init`).
"""

from __future__ import annotations

import torch
from torch import nn


def preprocess(obs: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float (..., 3, H, W) in [-0.5, 0.5], as in DreamerV2."""
    if obs.dtype != torch.uint8:
        raise TypeError(f"observations must be uint8 frames (..., H, W, 3), got dtype {obs.dtype}")
    if obs.dim() < 3 or obs.shape[-1] != 3:
        raise ValueError(f"observations must have shape (..., H, W, 3), got {tuple(obs.shape)}")
    return obs.movedim(-1, -3).float().div_(255.0).sub_(0.5)


def mlp(inp: int, out: int, units: int, layers: int, act: type[nn.Module] = nn.ELU) -> nn.Sequential:
    """`layers` hidden layers of width `units` with activation `act`, then a linear output layer."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(inp, units), act()]
        inp = units
    modules.append(nn.Linear(inp, out))
    return nn.Sequential(*modules)


class ConvEncoder(nn.Module):
    """64x64x3 frames -> a flat embedding of 32 * depth features."""

    def __init__(self, depth: int = 48, image_size: int = 64):
        super().__init__()
        if image_size != 64:
            raise ValueError(f"ConvEncoder expects 64x64 frames, got image_size={image_size}")
        self.depth = depth
        self.convs = nn.Sequential(
            nn.Conv2d(3, depth, 4, 2), nn.ELU(),
            nn.Conv2d(depth, 2 * depth, 4, 2), nn.ELU(),
            nn.Conv2d(2 * depth, 4 * depth, 4, 2), nn.ELU(),
            nn.Conv2d(4 * depth, 8 * depth, 4, 2), nn.ELU(),
        )
        self.out_dim = 32 * depth
        self.to(memory_format=torch.channels_last)  # faster convolutions with oneDNN (CPU) and cuDNN (GPU)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: float (..., 3, 64, 64) in [-0.5, 0.5] -> (..., 32 * depth)."""
        if image.shape[-3:] != (3, 64, 64):
            raise ValueError(f"ConvEncoder expects images (..., 3, 64, 64), got {tuple(image.shape)}")
        lead = image.shape[:-3]
        x = self.convs(image.reshape(-1, 3, 64, 64).contiguous(memory_format=torch.channels_last))
        return x.reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """Model features -> the mean of a unit-variance Normal over the 64x64x3 frame (in [-0.5, 0.5] units)."""

    def __init__(self, feat_dim: int, depth: int = 48):
        super().__init__()
        self.depth = depth
        self.linear = nn.Linear(feat_dim, 32 * depth)
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(32 * depth, 4 * depth, 5, 2), nn.ELU(),
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, 2), nn.ELU(),
            nn.ConvTranspose2d(2 * depth, depth, 6, 2), nn.ELU(),
            nn.ConvTranspose2d(depth, 3, 6, 2),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat (..., feat_dim) -> mean image (..., 3, 64, 64)."""
        lead = feat.shape[:-1]
        x = self.linear(feat).reshape(-1, 32 * self.depth)
        # The first transposed convolution sees a 1x1 input, so it is exactly a matrix product with its weight
        # (in, out, 5, 5) viewed as (in, out * 25); this is several times faster than the convolution routine.
        first = self.deconvs[0]
        x = (x @ first.weight.flatten(1).to(x.dtype)).reshape(-1, 4 * self.depth, 5, 5) + first.bias[:, None, None]
        x = x.contiguous(memory_format=torch.channels_last)
        return self.deconvs[1:](x).reshape(*lead, 3, 64, 64)


def normal_nll(mean: torch.Tensor, target: torch.Tensor, event_dims: int = 0) -> torch.Tensor:
    """Negative log-likelihood of `target` under Normal(mean, 1), without the constant log(2 pi) / 2 per dim.

    That is 0.5 * (target - mean)^2, summed over the last `event_dims` dimensions (3 for an image (C, H, W)).
    The sum names those dimensions instead of flattening them: frames in the channels-last memory of the
    convolutions cannot be flattened without a copy (which made this function 2x slower on a training batch).
    """
    nll = 0.5 * (target - mean) ** 2
    return nll.sum(tuple(range(-event_dims, 0))) if event_dims else nll


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of a 0/1 `target` under Bernoulli(sigmoid(logits)), elementwise."""
    return nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")


def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-initialise every Linear, Conv2d and ConvTranspose2d layer inside `module` (in place).

    "torch" keeps torch's defaults (uniform in +-1/sqrt(fan_in), biases included). "glorot" gives what the authors'
    Keras Dense / Conv2D / Conv2DTranspose layers (the GRU's input layer included) start with: weights uniform in
    +-sqrt(6 / (fan_in + fan_out)), variance 2 / (fan_in + fan_out), and zero biases. LayerNorm keeps scale 1 and
    shift 0. The ensemble layers of Plan2Explore (K stacked Linear layers, weight (K, in, out)) get the same rule
    per member. Every copy, the target critic included, gets its own draw: like the critic it starts untrained, and
    it becomes the critic's copy at the first target update (the authors' target critic also starts as its own draw).
    """
    if scheme == "torch":
        return
    if scheme != "glorot":
        raise ValueError(f"init scheme must be torch or glorot, got {scheme!r}")
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(layer.weight)
            elif type(layer).__name__ == "EnsembleLinear":  # intrinsic.py's (K, in, out) layer; it imports us
                for member in layer.weight:  # (in, out); the bound depends only on fan_in + fan_out
                    nn.init.xavier_uniform_(member)
            else:
                continue
            if layer.bias is not None:
                layer.bias.zero_()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
