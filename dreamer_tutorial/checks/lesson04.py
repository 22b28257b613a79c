"""Graders of lesson 04 (world model): replay rows, the discount predictor's loss, the whole world-model loss."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import call_learner, check_function, fail, passed


def reference_discount_nll(logits: torch.Tensor, is_terminal: torch.Tensor) -> torch.Tensor:
    from ..networks import bernoulli_nll

    return bernoulli_nll(logits, 1.0 - is_terminal.float()).mean()


def reference_replay_rows(actions: torch.Tensor, rewards: torch.Tensor, terminated: bool):
    """An episode's T steps -> its T + 1 replay rows (action, reward, is_first, is_terminal).

    `actions[k]` and `rewards[k]` are those of step k + 1: the action taken in frame x_k and the reward received
    with the frame x_{k+1} it led to. Row t holds frame x_t, the action that LED to x_t (a_{t-1} in imagination's
    indexing, zero on the reset row t = 0) and the reward received with x_t (zero on the reset row); is_first marks
    row 0 and is_terminal the last row only if the episode terminated (a time limit is not a termination).
    """
    zero_action, zero_reward = torch.zeros_like(actions[:1]), torch.zeros_like(rewards[:1])
    is_first = torch.zeros(len(rewards) + 1, dtype=torch.bool)
    is_first[0] = True
    is_terminal = torch.zeros(len(rewards) + 1, dtype=torch.bool)
    is_terminal[-1] = bool(terminated)
    return torch.cat([zero_action, actions]), torch.cat([zero_reward, rewards]), is_first, is_terminal


def check_discount_nll(fn: Callable) -> None:
    def make_inputs(g):
        return torch.randn(4, 16, generator=g), torch.rand(4, 16, generator=g) < 0.2
    check_function(fn, reference_discount_nll, make_inputs, name="discount_nll", grad_inputs=(0,),
                   hint="the target is the continuation flag 1 - is_terminal; binary cross-entropy on logits, "
                   "averaged over all steps")


def check_replay_rows(fn: Callable) -> None:
    def make_inputs(g):
        t = int(torch.randint(3, 12, (1,), generator=g))
        terminated = bool(torch.randint(0, 2, (1,), generator=g))  # the fixed seed gives both endings in 4 trials
        return torch.randn(t, 3, generator=g), torch.randn(t, generator=g), terminated
    check_function(fn, reference_replay_rows, make_inputs, name="replay_rows", trials=4,
                   hint="one row per frame, T + 1 rows; the first frame comes from reset, so no action led to it "
                   "and no reward came with it; is_terminal marks the last frame only if the episode terminated "
                   "(a time limit is not a termination)")


# --- the core exercise: the world-model loss ---------------------------------------------------------------------
def reference_world_model_loss(wm, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The world-model loss of a (B, T) batch, term by term, from the modules of `wm` and its config."""
    from ..networks import preprocess
    from ..world_model import kl_balance

    c = wm.config
    frames = preprocess(batch["obs"])                                         # (B, T, 3, 64, 64) in [-0.5, 0.5]
    post, prior = wm.rssm.observe(wm.encoder(frames), batch["action"], batch["is_first"])
    feat = post.feat                                                          # every term reads the posterior
    image_nll = (0.5 * (wm.decoder(feat) - frames) ** 2).sum((-3, -2, -1)).mean()
    reward = batch["reward"].float()
    if c.reward_transform == "tanh":
        reward = torch.tanh(reward)
    reward_nll = (0.5 * (wm.reward_head(feat).squeeze(-1) - reward) ** 2).mean()
    cont = 1.0 - batch["is_terminal"].float()
    discount_nll = torch.nn.functional.binary_cross_entropy_with_logits(wm.discount_head(feat).squeeze(-1), cont)
    kl_loss, _ = kl_balance(post.logits, prior.logits, c.kl_balance, c.kl_free)
    return image_nll + reward_nll + c.discount_scale * discount_nll + c.kl_scale * kl_loss


def proportional_factor(mine: torch.Tensor, expected: torch.Tensor) -> float | None:
    """k if the flat gradient `mine` is k times `expected` (to 0.1 %), else None."""
    if not expected.any() or not mine.any():
        return None
    factor = (mine @ expected).item() / (expected @ expected).item()
    return factor if (mine - factor * expected).norm().item() <= 1e-3 * mine.norm().item() else None


def gradient_problem(mine: torch.Tensor, expected: torch.Tensor, floor: float) -> str:
    """"" if the flat gradient `mine` matches `expected`, else what is wrong with it, to follow "the gradient of X":
    missing, unexpected, a constant factor, the opposite sign, or just different. Below `floor` in norm counts as
    zero."""
    if (mine - expected).norm().item() <= 1e-3 * expected.norm().item() + floor:
        return ""
    if expected.norm().item() <= floor:
        return "should be zero but is not"
    if mine.norm().item() <= floor:
        return "is missing (zero)"
    factor = proportional_factor(mine, expected)
    if factor is None:
        return "differs"
    return "has the opposite sign" if abs(factor + 1) < 1e-3 else f"is {factor:.3g} times the expected one"


def flat_grads(loss: torch.Tensor, groups: dict[str, list[torch.nn.Parameter]]) -> dict[str, torch.Tensor]:
    """d loss / d parameters, one flat vector per group (zeros where no gradient reaches)."""
    params = [p for ps in groups.values() for p in ps if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) if loss.requires_grad else ()
    found = {id(p): g for p, g in zip(params, grads, strict=False) if g is not None}

    def flat(p: torch.nn.Parameter) -> torch.Tensor:
        return found.get(id(p), torch.zeros_like(p)).flatten()

    return {name: torch.cat([flat(p) for p in ps]) for name, ps in groups.items()}


def _world_model_case(seed: int, **overrides):
    """A tiny WorldModel and a random (B, T) batch with resets, terminations and rewards beyond [-1, 1]."""
    from ..config import Config
    from ..world_model import WorldModel

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    wm = WorldModel(Config.preset("debug", **overrides), action_dim=2)
    b, t = 3, 5
    batch = {"obs": torch.randint(0, 256, (b, t, 64, 64, 3), generator=g, dtype=torch.uint8),
             "action": torch.rand(b, t, 2, generator=g) * 2 - 1, "reward": torch.randn(b, t, generator=g) * 2,
             "is_first": torch.rand(b, t, generator=g) < 0.2, "is_terminal": torch.rand(b, t, generator=g) < 0.3}
    batch["is_first"][:, 0] = True
    return wm, batch


def check_world_model_loss(fn: Callable) -> None:
    """Compare `fn(wm, batch)` with `WorldModel.loss` on tiny models: the value and the gradient every part of the
    model receives. The decoder, the reward head and the discount head each get gradient from one term only, and
    the prior (the RSSM's `img_out` layers) only from the KL, so a wrong gradient there names the wrong term."""
    name = "world_model_loss"
    hint = ("every term reads the posterior features; image and reward: unit-variance Normal NLLs without the "
            "constant (image summed over the pixels of a frame), averaged over the B * T steps; discount: Bernoulli "
            "NLL of 1 - is_terminal; KL_bal as in lesson 03 (free nats clamp the batch means); then L = image + "
            "reward + discount_scale * discount + kl_scale * KL_bal, all settings from wm.config")
    # (seed, config overrides, free nats as a multiple of the batch's mean KL): free nats off, then above the
    # mean KL (the KL term is then constant and sends no gradient), then just below it (some steps' KLs lie below
    # it, so clamping per step instead of after averaging differs); rewards through tanh once.
    cases = ((0, dict(kl_free=0.0, kl_balance=0.8, kl_scale=0.3, discount_scale=5.0), 0.0),
             (1, dict(kl_balance=0.7, kl_scale=0.5, discount_scale=2.0, reward_transform="tanh"), 1.3),
             (2, dict(kl_balance=0.8, kl_scale=0.2, discount_scale=5.0), 0.95))
    terms = (("decoder", "the image term"), ("reward head", "the reward term"),
             ("discount head", "the discount term (its target and its scale)"))
    for seed, overrides, free in cases:
        wm, batch = _world_model_case(seed, **overrides)
        if free:
            torch.manual_seed(seed)
            mean_kl = wm.loss(batch)[2]["kl"].item()
            wm.config = wm.config.replace(kl_free=round(free * mean_kl, 3))
        c = wm.config
        groups = {"encoder": list(wm.encoder.parameters()), "decoder": list(wm.decoder.parameters()),
                  "reward head": list(wm.reward_head.parameters()),
                  "discount head": list(wm.discount_head.parameters()), "prior": list(wm.rssm.img_out.parameters()),
                  "rest of the RSSM": [p for n, p in wm.rssm.named_parameters() if not n.startswith("img_out.")]}
        setting = (f"(balance {c.kl_balance}, kl_free {c.kl_free}, kl_scale {c.kl_scale}, discount_scale "
                   f"{c.discount_scale}, reward_transform {c.reward_transform!r})")
        torch.manual_seed(seed)  # the posterior is sampled: the learner and the package draw the same latents
        mine = call_learner(name, fn, wm, batch, hint=hint)
        if not torch.is_tensor(mine) or mine.numel() != 1:
            fail(name, f"expected the loss as a scalar tensor, got {type(mine).__name__} of shape "
                       f"{tuple(getattr(mine, 'shape', ()))}.", hint)
        if not mine.requires_grad:
            fail(name, "the loss carries no gradient: is something detached or computed under torch.no_grad()?", hint)
        mine_grads = flat_grads(mine, groups)
        torch.manual_seed(seed)
        expected = wm.loss(batch)[0]
        expected_grads = flat_grads(expected, groups)
        floor = 1e-9 * max(g.norm().item() for g in expected_grads.values())
        mine, expected = mine.detach().reshape(()).float(), expected.detach()
        if torch.allclose(mine, -expected, rtol=1e-4):
            fail(name, f"the loss has the opposite sign {setting}: it is a sum of negative log-likelihoods and a KL, "
                       "to be minimised.", hint)
        for group, term in terms:
            problem = gradient_problem(mine_grads[group], expected_grads[group], floor)
            if problem:
                fail(name, f"the gradient of the {group} {problem} {setting}: check {term}.", hint)
        a, beta = c.kl_balance, c.kl_scale
        problem = gradient_problem(mine_grads["prior"], expected_grads["prior"], floor)
        if problem == "should be zero but is not":
            fail(name, f"KL: the free nats are not respected {setting}: where the batch's mean KL is below kl_free, "
                       "the KL term is constant and sends no gradient.", hint)
        factor = proportional_factor(mine_grads["prior"], expected_grads["prior"])
        if problem and factor is not None:
            if min(abs(factor - (1 - a) / a), abs(factor - 1 / a)) < 1e-2:
                problem = ("shows that the prior and posterior get the wrong share: the prior's side (posterior "
                           "held fixed) is weighted by balance, the posterior's side by 1 - balance")
            elif beta != 1 and abs(factor - 1 / beta) < 1e-2:
                problem = "shows that the KL is not scaled by kl_scale"
        if problem:
            fail(name, f"KL: the gradient of the prior (the RSSM's img_out layers, which only the KL trains) "
                       f"{problem} {setting}.", hint)
        for group in ("rest of the RSSM", "encoder"):
            problem = gradient_problem(mine_grads[group], expected_grads[group], floor)
            if problem == "is missing (zero)":
                fail(name, f"the {group} receives no gradient {setting}: is its output detached?", hint)
            if problem:
                fail(name, f"the gradient of the {group} {problem} {setting}, while the heads and the prior get "
                           "the right ones: check the posterior's side of the KL (the prior held fixed, weight "
                           "1 - balance), and that the states come from one pass of the RSSM over the batch.", hint)
        if not torch.allclose(mine, expected, rtol=1e-4, atol=1e-4):
            fail(name, f"every gradient is right but the loss value is off by {(mine - expected).item():.4g} "
                       f"{setting}: a constant term (the package leaves out the constants of the Normal NLLs), or "
                       "the free-nats clamp applied to the gradient but not to the value?", hint)
    passed(name, fn)
