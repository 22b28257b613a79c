"""The DreamerV2 world model: encoder, RSSM, decoder, reward and discount heads, and its loss.

    L(phi) = E[ sum_t  -ln p(x_t | s_t) - ln p(r_t | s_t) - eta_d ln p(gamma_t | s_t) + beta KL_bal(q_t, p_t) ]

with s_t = (h_t, z_t) from the posterior, x_t the frame (Normal, unit variance), r_t the reward (Normal, unit
variance), gamma_t = 1 - is_terminal (Bernoulli, scale eta_d = `discount_scale`) and the balanced KL of
`kl_balance` scaled by beta = `kl_scale`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import Config
from .networks import ConvDecoder, ConvEncoder, bernoulli_nll, mlp, normal_nll, preprocess
from .rssm import RSSM, State


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) of categoricals given by logits (..., stoch, classes), summed over stoch and classes."""
    logp, logq = F.log_softmax(logits_p, -1), F.log_softmax(logits_q, -1)
    return (logp.exp() * (logp - logq)).sum((-2, -1))


def kl_balance(post_logits: torch.Tensor, prior_logits: torch.Tensor, balance: float = 0.8, free: float = 0.0,
               free_avg: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """KL balancing (DreamerV2, eq. 2 and Algorithm 2).

        loss = a * max(KL(sg(q) || p), free) + (1 - a) * max(KL(q || sg(p)), free),   a = balance

    The prior p is trained towards the posterior q with weight a, the posterior is regularised towards the
    prior with weight 1 - a. Both terms have the same value; only where the gradient goes differs.
    With `free_avg` the free-nats clamp applies to the KL averaged over the batch, otherwise per element.
    Returns (loss, kl) with kl the detached mean KL(q || p).
    """
    if post_logits.shape != prior_logits.shape or post_logits.dim() < 2:
        raise ValueError(f"kl_balance expects logits of equal shape (..., stoch, classes), got "
                         f"{tuple(post_logits.shape)} and {tuple(prior_logits.shape)}")
    kl_prior = categorical_kl(post_logits.detach(), prior_logits)  # trains the prior
    kl_post = categorical_kl(post_logits, prior_logits.detach())  # trains the posterior
    if free_avg:
        kl_prior, kl_post = kl_prior.mean(), kl_post.mean()
    free_t = torch.tensor(free, dtype=kl_prior.dtype, device=kl_prior.device)
    loss = balance * torch.maximum(kl_prior, free_t).mean() + (1 - balance) * torch.maximum(kl_post, free_t).mean()
    return loss, kl_post.detach().mean()


class WorldModel(nn.Module):
    def __init__(self, config: Config, action_dim: int):
        super().__init__()
        c = self.config = config
        self.action_dim = action_dim
        self.encoder = ConvEncoder(c.cnn_depth, c.image_size)
        self.rssm = RSSM(self.encoder.out_dim, action_dim, c.deter, c.hidden, c.stoch, c.classes)
        feat = self.rssm.feat_dim
        self.decoder = ConvDecoder(feat, c.cnn_depth)
        self.reward_head = mlp(feat, 1, c.mlp_units, c.mlp_layers)
        self.discount_head = mlp(feat, 1, c.mlp_units, c.mlp_layers)

    # ------------------------------------------------------------------------------------------------------------
    def check_obs(self, obs: torch.Tensor) -> None:
        """Raise a clear error unless obs is uint8 (..., image_size, image_size, 3)."""
        size = self.config.image_size
        if obs.dtype != torch.uint8:
            raise TypeError(f"observations must be uint8 frames (..., {size}, {size}, 3), got dtype {obs.dtype}")
        if tuple(obs.shape[-3:]) != (size, size, 3):
            raise ValueError(f"observations must have shape (..., {size}, {size}, 3) (HWC), got {tuple(obs.shape)}")

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> embeddings (..., E)."""
        self.check_obs(obs)
        return self.encoder(preprocess(obs))

    def observe(self, batch: dict[str, torch.Tensor], state: State | None = None) -> tuple[State, State]:
        """Posterior and prior states (B, T, ...) for a replay batch."""
        return self.rssm.observe(self.embed(batch["obs"]), batch["action"], batch["is_first"], state)

    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.reward_head(feat).squeeze(-1)

    def discount(self, feat: torch.Tensor) -> torch.Tensor:
        """Predicted gamma * P(episode continues)."""
        return self.config.gamma * torch.sigmoid(self.discount_head(feat).squeeze(-1))

    def decode(self, feat: torch.Tensor) -> torch.Tensor:
        """Mean frame as uint8 (..., H, W, 3), for pictures and videos."""
        image = self.decoder(feat).movedim(-3, -1)
        return ((image + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)

    # ------------------------------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        """World-model loss for a batch (B, T). Returns (loss, posterior states, metrics as tensors)."""
        c = self.config
        self.check_obs(batch["obs"])
        image = preprocess(batch["obs"])  # once: the encoder's input is the decoder's target
        post, prior = self.rssm.observe(self.encoder(image), batch["action"], batch["is_first"])
        feat = post.feat
        # normal_nll(decoder(feat), image, event_dims=3).mean(), in one fused kernel each way (F.mse_loss): the
        # elementwise form costs ~4x more on a training batch (results/throughput.md)
        image_nll = 0.5 * F.mse_loss(self.decoder(feat), image, reduction="sum") / feat.shape[:-1].numel()
        reward = batch["reward"].float()  # with reward_transform "tanh" the head learns tanh(r), as the authors do
        reward_nll = normal_nll(self.reward(feat), reward.tanh() if c.reward_transform == "tanh" else reward).mean()
        cont = 1.0 - batch["is_terminal"].float()
        discount_nll = bernoulli_nll(self.discount_head(feat).squeeze(-1), cont).mean()
        kl_loss, kl = kl_balance(post.logits, prior.logits, c.kl_balance, c.kl_free)
        loss = image_nll + reward_nll + c.discount_scale * discount_nll + c.kl_scale * kl_loss
        metrics = {"model_loss": loss, "image_loss": image_nll, "reward_loss": reward_nll,
                   "discount_loss": discount_nll, "kl": kl,
                   "prior_entropy": _entropy(prior.logits), "post_entropy": _entropy(post.logits)}
        return loss, post, {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def open_loop(self, batch: dict[str, torch.Tensor], context: int = 5) -> dict[str, torch.Tensor]:
        """Reconstruct the first `context` frames, then predict the rest from the actions alone.

        Returns uint8 frames (B, T, H, W, 3): `truth`, `model` (reconstructions then open-loop predictions).
        """
        post, _ = self.rssm.observe(self.embed(batch["obs"][:, :context]), batch["action"][:, :context],
                                    batch["is_first"][:, :context])
        start = post.map(lambda x: x[:, -1])
        prior = self.rssm.imagine_actions(start, batch["action"][:, context:])
        recon = self.decode(post.feat)
        dream = self.decode(prior.feat)
        return {"truth": batch["obs"], "model": torch.cat([recon, dream], 1)}


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum((-2, -1)).mean()
