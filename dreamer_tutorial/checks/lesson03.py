"""Graders of lesson 03 (RSSM): straight-through gradients, the RSSM's prior and posterior steps, the categorical KL,
KL balancing.

The step graders hand the learner's `img_step` / `obs_step` a small package `RSSM` (its layers hold the weights) and
compare with that RSSM's own step. The one-hot samples are random, so each grader seeds torch's global random number
generator identically before the learner's step and the package's: the learner must sample with the package's
`straight_through_sample` for the samples to agree (the package has no way to pass noise explicitly).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..rssm import State, straight_through_sample
from ._core import call_learner, check_function, fail, passed, solution


def reference_straight_through(logits: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(logits, -1)
    return sample + (probs - probs.detach())  # parenthesised: exactly the one-hot in the forward pass


def check_straight_through(fn: Callable) -> None:
    def make_inputs(g):
        logits = torch.randn(8, 32, 32, generator=g)
        index = torch.multinomial(torch.softmax(logits, -1).flatten(0, 1), 1, generator=g).view(8, 32)
        return logits, torch.nn.functional.one_hot(index, 32).float()
    check_function(fn, reference_straight_through, make_inputs, name="straight_through", grad_inputs=(0,),
                   hint="the forward value must be exactly the one-hot sample; the gradient must be that of the "
                   "class probabilities softmax(logits)")


@solution("dreamer_tutorial.world_model.kl_balance")
def check_kl_balance(fn: Callable) -> None:
    from ..world_model import categorical_kl, kl_balance

    def make_inputs(g):
        # Sharpness varies across the batch, so the per-sample KLs range from ~0.1 to ~30 nats; the free nats lie
        # below or above the batch-mean KL (then the loss is constant and sends no gradient) depending on the trial.
        scale = torch.linspace(0.1, 1.5, 6)[:, None, None]
        post, prior = torch.randn(6, 32, 32, generator=g) * scale, torch.randn(6, 32, 32, generator=g) * scale
        mean_kl = categorical_kl(post, prior).mean().item()
        balance = round(float(torch.rand(1, generator=g)) * 0.8 + 0.1, 3)
        free = round(mean_kl * (0.5 if torch.rand(1, generator=g) < 0.6 else 1.3), 3)
        return post, prior, balance, free
    check_function(fn, lambda post, prior, balance, free: kl_balance(post, prior, balance, free)[0], make_inputs,
                   name="kl_balance", grad_inputs=(0, 1), trials=6,
                   hint="KL summed over the 32 latents and averaged over the batch; balance weights the term where "
                   "the posterior is detached; free nats clamp each term from below after averaging")


@solution("dreamer_tutorial.world_model.categorical_kl")
def check_categorical_kl(fn: Callable) -> None:
    from ..world_model import categorical_kl

    def make_inputs(g):
        return torch.randn(6, 32, 32, generator=g) * 2, torch.randn(6, 32, 32, generator=g) * 2
    check_function(fn, categorical_kl, make_inputs, name="categorical_kl", grad_inputs=(0, 1),
                   hint="KL(P || Q) = sum_c p_c (log p_c - log q_c) with P from the FIRST argument; use log_softmax "
                   "for the log-probabilities; sum over the classes and over the 32 variables: one value per sample")


# --- the core exercise: the RSSM's prior step (img_step) and posterior step (obs_step) ----------------------------

def reference_img_step(rssm, prev: State, action: torch.Tensor) -> State:
    """Prior step with the layers of the package's `rssm`: h_t = f(h_{t-1}, z_{t-1}, a), z_t ~ p(z_t | h_t)."""
    x = rssm.img_in(torch.cat([prev.stoch.flatten(-2), action], -1))  # [flatten(z_{t-1}), a] -> GRU input
    deter = rssm.cell(x, prev.deter)  # h_t
    logits = rssm.img_out(deter).unflatten(-1, (rssm.stoch_dim, rssm.classes))
    return State(deter, straight_through_sample(logits), logits)


def reference_obs_step(rssm, prev: State, action: torch.Tensor, embed: torch.Tensor,
                       is_first: torch.Tensor) -> tuple[State, State]:
    """Posterior step: reset the rows where `is_first`, take the prior step, then z_t ~ q(z_t | h_t, e_t)."""
    keep = (~is_first.bool()).to(action.dtype).unsqueeze(-1)  # (B, 1): 0 where a new episode starts
    prev = State(prev.deter * keep, prev.stoch * keep.unsqueeze(-1), prev.logits * keep.unsqueeze(-1))
    prior = reference_img_step(rssm, prev, action * keep)  # your my_img_step in the lesson
    logits = rssm.obs_out(torch.cat([prior.deter, embed], -1)).unflatten(-1, (rssm.stoch_dim, rssm.classes))
    return State(prior.deter, straight_through_sample(logits), logits), prior


_SAMPLE_HINT = ("sample with the package's straight_through_sample(logits) (dreamer_tutorial.rssm), once per "
                "categorical latent, prior before posterior: the grader seeds torch's random number generator the "
                "same way for your step and the package's, so the one-hot samples must be drawn the same way")


def _small_rssm():
    from ..rssm import RSSM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return RSSM(embed_dim=10, action_dim=3, deter=16, hidden=12, stoch=6, classes=5)  # stoch != classes


def _step_inputs(rssm, generator: torch.Generator, batch: int = 6) -> dict[str, torch.Tensor]:
    """Random leaf tensors (that require gradients) for one step: a previous state, an action and an embedding."""
    index = torch.randint(rssm.classes, (batch, rssm.stoch_dim), generator=generator)
    inputs = {"deter": torch.tanh(torch.randn(batch, rssm.deter_dim, generator=generator)),
              "stoch": torch.nn.functional.one_hot(index, rssm.classes).float(),
              "logits": torch.randn(batch, rssm.stoch_dim, rssm.classes, generator=generator),
              "action": torch.rand(batch, rssm.action_dim, generator=generator) * 2 - 1,
              "embed": torch.randn(batch, rssm.embed_dim, generator=generator)}
    return {k: v.requires_grad_(True) for k, v in inputs.items()}


def _seeded(seed: int, fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)` with torch's global generator seeded with `seed` (its state is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(*args, **kwargs)


def _as_state(name: str, out, what: str, hint: str) -> State:
    if not isinstance(out, (tuple, list)) or len(out) != 3 or not all(torch.is_tensor(x) for x in out):
        fail(name, f"{what} must be a State(deter, stoch, logits) of three tensors, got {type(out).__name__}.", hint)
    return State(*out)


def _is_one_hot(x: torch.Tensor) -> bool:
    x = x.detach()
    return bool(((x.abs() < 1e-5) | ((x - 1).abs() < 1e-5)).all() and ((x.sum(-1) - 1).abs() < 1e-5).all())


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach(), b.detach(), atol=1e-5, rtol=1e-4)


def _compare_state(name: str, mine: State, ref: State, what: str, hint: str, diagnose: Callable | None = None) -> None:
    """Shapes, then h_t, then the logits, then the one-hot sample. `diagnose(field, tensor)` may name a mistake."""
    for field in ("deter", "logits", "stoch"):
        a, b = getattr(mine, field), getattr(ref, field)
        if a.shape != b.shape:
            extra = (" Give the logits one row per categorical latent: (batch, stoch, classes)."
                     if field != "deter" and a.numel() == b.numel() else "")
            fail(name, f"{what}.{field} has shape {tuple(a.shape)}, expected {tuple(b.shape)}.{extra}", hint)
    for field in ("deter", "logits"):
        a, b = getattr(mine, field), getattr(ref, field)
        if not _close(a, b):
            named = diagnose(field, a) if diagnose is not None else ""
            rows = torch.nonzero((a - b).detach().abs().amax(tuple(range(1, a.dim()))) > 1e-5).flatten().tolist()
            fail(name, f"{what}.{field} values are wrong in batch rows {rows} (largest error "
                       f"{(a - b).abs().max().item():.3g}).{named}", hint)
    if not _is_one_hot(mine.stoch):
        fail(name, f"{what}.stoch is not one-hot in the forward pass: it must be exactly the sampled one-hot "
                   "(probabilities only reach the backward pass).", hint)
    if not _close(mine.stoch, ref.stoch):
        fail(name, f"{what}.stoch is a one-hot sample, but not the one the package draws with the same seed.",
             _SAMPLE_HINT)


def _compare_gradients(name: str, mine: State, ref: State, mine_in: dict, ref_in: dict, rssm, head: str, what: str,
                       hint: str, generator: torch.Generator) -> None:
    """The straight-through gradient of the sample reaches `head`'s weights (through the logits) as in the package,
    and the gradients with respect to the previous state and the action agree."""
    weights = list(getattr(rssm, head).parameters())
    w = torch.randn(ref.stoch.shape, generator=generator)
    g_mine = [None]
    if mine.stoch.requires_grad:
        g_mine = torch.autograd.grad((w * mine.stoch).sum(), weights, allow_unused=True, retain_graph=True)
    if any(g is None or not g.any() for g in g_mine):
        fail(name, f"no gradient reaches the logits through {what}.stoch: the straight-through estimator is missing "
                   "(the sample must carry the gradient of the class probabilities).", hint)
    g_ref = torch.autograd.grad((w * ref.stoch).sum(), weights, retain_graph=True)
    if not all(_close(a, b) for a, b in zip(g_mine, g_ref, strict=True)):
        fail(name, f"the gradient through {what}.stoch is wrong: it must be that of softmax(logits).", hint)
    labels = {"deter": "the previous deter (h_{t-1})", "stoch": "the previous stoch (z_{t-1})",
              "action": "the action", "embed": "the embedding"}
    ws = [torch.randn(x.shape, generator=generator) for x in ref]
    mine_grads = _grads(mine, ws, [mine_in[k] for k in labels])
    for label, a, b in zip(labels.values(), mine_grads, _grads(ref, ws, [ref_in[k] for k in labels]), strict=True):
        if not a.any() and b.any():
            fail(name, f"no gradient reaches {label}: is something detached?", hint)
        if not _close(a, b):
            fail(name, f"the values are right but the gradient of the {what} with respect to {label} is wrong.",
                 hint)


def _grads(state: State, weights: list[torch.Tensor], inputs: list[torch.Tensor]):
    total = sum((w * x).sum() for w, x in zip(weights, state, strict=True) if x.requires_grad)
    if not torch.is_tensor(total):
        return [torch.zeros_like(x) for x in inputs]
    return [g if g is not None else torch.zeros_like(x)
            for g, x in zip(torch.autograd.grad(total, inputs, allow_unused=True, retain_graph=True), inputs,
                            strict=True)]


def check_img_step(fn: Callable) -> None:
    """Grade `fn(rssm, prev, action) -> State`, the prior step, against `rssm.img_step` with the same seed."""
    name = "img_step"
    hint = ("h_t = rssm.cell(rssm.img_in([flatten(z_{t-1}), a]), h_{t-1}); the prior logits come from rssm.img_out "
            "of the NEW h_t, one row of classes per latent; then a straight-through one-hot sample")
    rssm, generator = _small_rssm(), torch.Generator().manual_seed(0)
    for trial in range(3):
        seed = 1000 + trial
        inputs = _step_inputs(rssm, generator)
        mine_in = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
        mine = _as_state(name, _seeded(seed, call_learner, name, fn, rssm, State(
            mine_in["deter"], mine_in["stoch"], mine_in["logits"]), mine_in["action"], hint=hint), "img_step's result",
            hint)
        ref = _seeded(seed, rssm.img_step, State(inputs["deter"], inputs["stoch"], inputs["logits"]),
                      inputs["action"])

        def diagnose(field, value, inputs=inputs):
            with torch.no_grad():
                stale = rssm.img_out(inputs["deter"]).unflatten(-1, (rssm.stoch_dim, rssm.classes))
            if field == "logits" and _close(value, stale):
                return (" They are the prior of the PREVIOUS deterministic state h_{t-1}: an off-by-one step; "
                        "compute them from the new h_t.")
            return ""
        _compare_state(name, mine, ref, "prior", hint, diagnose)
        _compare_gradients(name, mine, ref, mine_in, inputs, rssm, "img_out", "prior", hint, generator)
    passed(name, fn)


def check_obs_step(fn: Callable) -> None:
    """Grade `fn(rssm, prev, action, embed, is_first) -> (posterior, prior)` against `rssm.obs_step`."""
    name = "obs_step"
    hint = ("where is_first is true, zero the previous state (h, z and logits) AND the action, only in those rows, "
            "without changing prev in place; the prior is your img_step of that; the posterior uses the same h_t, "
            "logits from rssm.obs_out([h_t, e_t])")
    rssm, generator = _small_rssm(), torch.Generator().manual_seed(1)
    patterns = [[True, False, False, True, False, False], [False, True, False, False, False, True],
                [False, False, True, True, True, False]]
    for trial, pattern in enumerate(patterns):
        seed, is_first = 2000 + trial, torch.tensor(pattern)
        inputs = _step_inputs(rssm, generator)
        mine_in = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
        out = _seeded(seed, call_learner, name, fn, rssm, State(mine_in["deter"], mine_in["stoch"], mine_in["logits"]),
                      mine_in["action"], mine_in["embed"], is_first.clone(), hint=hint)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(name, f"obs_step must return two States (posterior, prior), got {type(out).__name__}"
                       f"{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''}.", hint)
        post, prior = (_as_state(name, s, what, hint) for s, what in zip(out, ("the posterior", "the prior"),
                                                                            strict=True))
        prev = State(inputs["deter"], inputs["stoch"], inputs["logits"])
        ref_post, ref_prior = _seeded(seed, rssm.obs_step, prev, inputs["action"], inputs["embed"], is_first)

        def diagnose_prior(field, value, prev=prev, inputs=inputs, is_first=is_first, seed=seed):
            return _diagnose_reset(rssm, value, field, prev, inputs["action"], inputs["embed"], is_first, seed)

        def diagnose_post(field, value, prior=prior, prev=prev, inputs=inputs, is_first=is_first):
            return _diagnose_posterior(rssm, value, field, prior, prev, inputs["embed"], is_first)
        _compare_state(name, prior, ref_prior, "prior", hint + ". The prior must be img_step's output from the "
                       "reset state and action", diagnose_prior)
        _compare_state(name, post, ref_post, "posterior", hint, diagnose_post)
        _compare_gradients(name, post, ref_post, mine_in, inputs, rssm, "obs_out", "posterior", hint, generator)
        _compare_gradients(name, prior, ref_prior, mine_in, inputs, rssm, "img_out", "prior", hint, generator)
    passed(name, fn)


def _masked(prev: State, keep: torch.Tensor, fields=("deter", "stoch", "logits")) -> State:
    return State(*(x * keep.view(-1, *[1] * (x.dim() - 1)) if f in fields else x
                   for f, x in zip(State._fields, prev, strict=True)))


def _diagnose_reset(rssm, value, field, prev, action, embed, is_first, seed) -> str:
    """Name the reset mistake whose prior matches the learner's (or "")."""
    keep = (~is_first).float()
    variants = [
        (prev, action, " The state is not reset where is_first is true: a new episode inherits the previous "
                             "episode's memory (a missing reset)."),
        (_masked(prev, torch.zeros_like(keep)), torch.zeros_like(action),
         " Every row is reset, not only the rows where is_first is true."),
        (_masked(prev, 1 - keep), action * (1 - keep)[:, None],
         " The rows where is_first is FALSE are reset: the mask is inverted."),
        (_masked(prev, keep), action, " The previous state is reset but the action is not."),
        (prev, action * keep[:, None], " The action is reset but the previous state is not."),
        (_masked(prev, keep, ("deter",)), action * keep[:, None],
         " h_{t-1} is reset but the stochastic state z_{t-1} is not."),
    ]
    with torch.no_grad():
        for state, act, message in variants:
            prior = _seeded(seed, rssm.img_step, state, act)
            if _close(value, getattr(prior, field)):
                return message
    return ""


def _diagnose_posterior(rssm, value, field, prior, prev, embed, is_first) -> str:
    if field == "deter":
        return " The posterior's h_t must be the prior step's h_t (the same deterministic state)."
    with torch.no_grad():
        stale = _masked(prev, (~is_first).float()).deter
        candidates = [(rssm.obs_out(torch.cat([stale, embed], -1)),
                       " They are computed from the previous h_{t-1}: an off-by-one step; use the new h_t."),
                      (prior.logits, " They are the prior's logits: the posterior must also see the embedding e_t.")]
        for logits, message in candidates:
            if _close(value, logits.reshape(value.shape)):
                return message
    return ""
