"""Graders of lesson 05 (actor-critic): lambda-returns, discount weights, the REINFORCE loss, one whole update."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import call_learner, check_function, fail, passed, solution


def reference_discount_weights(start_cont: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
    """Weights of the H imagined steps: the probability (times gamma^t) that the episode is still running."""
    return torch.cumprod(torch.cat([start_cont[None], discount[:-1]], 0), 0)


@solution("dreamer_tutorial.behavior.lambda_return")
def check_lambda_return(fn: Callable) -> None:
    from ..behavior import lambda_return

    def make_inputs(g):
        h, n = 15, 6
        lambda_ = round(float(torch.rand(1, generator=g)) * 0.9 + 0.05, 3)
        return (torch.randn(h, n, generator=g), torch.randn(h, n, generator=g),
                0.99 * (torch.rand(h, n, generator=g) > 0.1).float(), torch.randn(n, generator=g), lambda_)
    check_function(fn, lambda_return, make_inputs, name="lambda_return", grad_inputs=(0, 1, 3), trials=4,
                   hint="R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}), computed backwards from "
                   "R_H = v_H = bootstrap")


def check_discount_weights(fn: Callable) -> None:
    def make_inputs(g):
        return (torch.rand(8, generator=g) > 0.2).float(), 0.99 * torch.rand(15, 8, generator=g)
    check_function(fn, reference_discount_weights, make_inputs, name="discount_weights",
                   hint="the first imagined step is the real start state: weight = its continuation flag; each "
                   "later step multiplies by the discount predicted for the step before it")


class _GivenDist:
    """Stands in for an action distribution whose log-probabilities and entropies are already computed."""

    def __init__(self, log_prob: torch.Tensor, entropy: torch.Tensor):
        self._log_prob, self._entropy = log_prob, entropy

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self._log_prob

    def entropy(self) -> torch.Tensor:
        return self._entropy


def reference_reinforce_loss(log_prob: torch.Tensor, returns: torch.Tensor, baseline: torch.Tensor,
                             entropy: torch.Tensor, weight: torch.Tensor, entropy_scale: float) -> torch.Tensor:
    """behavior.actor_loss for discrete actions (pure REINFORCE: dynamics-backprop weight mix = 0)."""
    from ..behavior import actor_loss

    dist = _GivenDist(log_prob, entropy)
    return actor_loss(dist, torch.zeros_like(log_prob), returns, baseline, weight, 0.0, entropy_scale)[0]


def check_reinforce_loss(fn: Callable) -> None:
    name = "reinforce_loss"
    hint = ("loss = -mean(w * (log_prob * advantage + eta * entropy)) with the advantage R - v held constant "
            "(stop-gradient): only the log-probabilities and the entropy train the actor")

    def make_inputs(g):
        h, n = 15, 8
        return (-torch.rand(h, n, generator=g) * 3, torch.randn(h, n, generator=g), torch.randn(h, n, generator=g),
                torch.rand(h, n, generator=g) * 1.6, torch.rand(h, n, generator=g),
                float(torch.rand(1, generator=g)) * 0.1 + 0.01)

    # The reference sends no gradient at all into the returns and the baseline, which check_function skips, so
    # test that stop-gradient here: a learner's loss must not depend on them through the autograd graph.
    args = list(make_inputs(torch.Generator().manual_seed(1)))
    args[1], args[2] = args[1].requires_grad_(True), args[2].requires_grad_(True)
    try:
        out = fn(*args)
    except Exception:  # check_function below reports it (not implemented, or the error)
        out = None
    if torch.is_tensor(out) and out.requires_grad and out.numel() == 1:
        leaks = [g for g in torch.autograd.grad(out.sum(), args[1:3], allow_unused=True)
                 if g is not None and g.abs().max() > 0]
        if leaks:
            fail(name, "a gradient flows into the returns or the baseline (arguments 1 and 2): the actor must "
                        "treat the advantage as a constant.", hint)
    check_function(fn, reference_reinforce_loss, make_inputs, name=name, grad_inputs=(0, 3, 4), hint=hint)


# --- the core exercise: one actor-critic update ------------------------------------------------------------------
def reference_actor_critic_update(ac, world_model, start, start_cont: torch.Tensor):
    """(actor loss, critic loss) of one `ActorCritic.train_step` from start states (N, ...) with continuation
    flags (N,): imagine H steps with the world model frozen, lambda-returns of the slow target critic, discount
    weights, then the two losses with their stop-gradients."""
    from ..behavior import frozen, lambda_return

    c = ac.config
    with frozen(world_model):                                     # the behaviour losses never train the model
        states, actions, dist = ac.imagine(world_model, start, c.horizon)  # s_0..s_H, a_0..a_{H-1}, pi(.|s_t)
        feat = states.feat
        reward = world_model.reward(feat[1:])                     # (H, N): r_{t+1}, from the state a_t led to
        discount = world_model.discount(feat[1:])                 # (H, N): d_{t+1}
        value = ac.value(feat, target=True)                       # (H + 1, N): the slow target critic
        returns = lambda_return(reward, value[:-1], discount, value[-1], c.lambda_)  # R_0..R_{H-1}
        weight = torch.cumprod(torch.cat([start_cont[None].float(), discount[:-1]]), 0).detach()
        advantage = (returns - value[:-1]).detach()               # REINFORCE: a constant
        objective = ac.mix * returns + (1 - ac.mix) * dist.log_prob(actions.detach()) * advantage
        actor = -(weight * (objective + c.actor_entropy * dist.entropy())).mean()
    critic = (weight * 0.5 * (ac.value(feat[:-1].detach()) - returns.detach()) ** 2).mean()
    return actor, critic


def _actor_critic_case(seed: int, discrete: bool):
    """A tiny world model and actor-critic (online critic != target critic) and N = 8 start states."""
    from ..behavior import ActorCritic
    from ..config import Config
    from ..world_model import WorldModel

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    config = Config.preset("debug", actor_entropy=0.03, grad_clip=1e9)  # no clipping: the raw gradients
    action_dim = 3 if discrete else 2
    wm = WorldModel(config, action_dim)
    ac = ActorCritic(config, wm.rssm.feat_dim, action_dim, discrete)
    b, t = 2, 4
    if discrete:
        action = torch.nn.functional.one_hot(torch.randint(0, action_dim, (b, t), generator=g), action_dim).float()
    else:
        action = torch.rand(b, t, action_dim, generator=g) * 2 - 1
    batch = {"obs": torch.randint(0, 256, (b, t, 64, 64, 3), generator=g, dtype=torch.uint8), "action": action,
             "is_first": torch.arange(t).expand(b, t) == 0}
    with torch.no_grad():
        for p in ac.critic.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        post, _ = wm.observe(batch)
    start_cont = (torch.rand(b * t, generator=g) > 0.25).float()
    return wm, ac, post.map(lambda x: x.flatten(0, 1)), start_cont


@torch.no_grad()
def _variant_losses(ac, wm, start, start_cont, seed, critic_shift=0, value_shift=0, reward_shift=1,
                    baseline_shift=0):
    """The reference's two loss values with one index shifted, to recognise off-by-one mistakes."""
    from ..behavior import lambda_return

    c = ac.config
    torch.manual_seed(seed)
    states, actions, dist = ac.imagine(wm, start, c.horizon)
    feat, h = states.feat, c.horizon
    reward = wm.reward(feat[reward_shift:reward_shift + h])
    discount = wm.discount(feat[reward_shift:reward_shift + h])
    value = ac.value(feat, target=True)
    returns = lambda_return(reward, value[value_shift:value_shift + h], discount, value[-1], c.lambda_)
    weight = torch.cumprod(torch.cat([start_cont[None], discount[:-1]]), 0)
    advantage = returns - value[baseline_shift:baseline_shift + h]
    objective = ac.mix * returns + (1 - ac.mix) * dist.log_prob(actions) * advantage
    actor = -(weight * (objective + c.actor_entropy * dist.entropy())).mean()
    critic = (weight * 0.5 * (ac.value(feat[critic_shift:critic_shift + h]) - returns) ** 2).mean()
    return actor, critic


_OFF_BY_ONE = (
    (dict(critic_shift=1), "the critic's value of s_{t+1} is regressed onto R_t, the target of v(s_t)"),
    (dict(value_shift=1), "lambda_return gets v(s_1)..v(s_H) as values; it wants v(s_0)..v(s_{H-1}) and looks "
                          "one step ahead itself"),
    (dict(reward_shift=0), "the reward and discount of the step s_t -> s_{t+1} come from s_t instead of s_{t+1}, "
                           "the state the action led to"),
    (dict(baseline_shift=1), "the baseline of R_t is v(s_{t+1}) instead of v(s_t)"),
)


def check_actor_critic_update(fn: Callable) -> None:
    """Compare `fn(ac, world_model, start, start_cont) -> (actor_loss, critic_loss)` with `ActorCritic.train_step`
    on tiny models, continuous (dynamics backprop) then discrete (REINFORCE): the two values, and the gradient each
    network receives from each loss. The actor loss may train only the actor, the critic loss only the critic; the
    world model and the target critic receive none."""
    from .lesson04 import flat_grads, gradient_problem

    name = "actor_critic_update"
    for seed, discrete in ((0, False), (1, True)):
        kind = ("discrete actions, REINFORCE, ac.mix = 0" if discrete
                else "continuous actions, dynamics backprop, ac.mix = 1")
        hint = ("imagine with the world model frozen; rewards, discounts from feat[1:], values of the TARGET critic "
                "for the lambda-returns; weights w_t = cumprod of [start_cont, d_1 .. d_{H-1}], detached; actor: "
                "-mean(w (mix R + (1 - mix) ln pi(a) sg(R - v) + eta H)); critic: mean(w 0.5 (v(sg(s_t)) - "
                "sg(R_t))^2) for t = 0..H-1")
        wm, ac, start, start_cont = _actor_critic_case(seed, discrete)
        torch.manual_seed(seed + 100)  # the actions and latents of imagination are sampled: the same noise for both
        metrics = ac.train_step(wm, start, start_cont)
        expected = {"actor": metrics["actor_loss"], "critic": metrics["critic_loss"]}
        expected_grads = {"actor": torch.cat([p.grad.flatten() for p in ac.actor.parameters()]),
                          "critic": torch.cat([p.grad.flatten() for p in ac.critic.parameters()])}
        floor = 1e-9 * max(g.norm().item() for g in expected_grads.values())

        wm, ac, start, start_cont = _actor_critic_case(seed, discrete)
        torch.manual_seed(seed + 100)
        out = call_learner(name, fn, ac, wm, start, start_cont, hint=hint)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(torch.is_tensor(x) and x.numel() == 1
                                                                         for x in out)):
            fail(name, "expected two scalar tensors, (actor_loss, critic_loss).", hint)
        mine = dict(zip(("actor", "critic"), out, strict=True))
        groups = {"actor": list(ac.actor.parameters()), "critic": list(ac.critic.parameters()),
                  "target critic": list(ac.target_critic.parameters()), "world model": list(wm.parameters())}
        grads = {loss: flat_grads(mine[loss], groups) for loss in mine}
        advice = {"world model": "freeze it while imagining (behavior.frozen): the behaviour losses must not change "
                                 "the model they are evaluated in",
                  "target critic": "it is a slow copy of the critic, changed only by copying"}
        for loss in ("actor", "critic"):
            for module in ("world model", "target critic"):
                if grads[loss][module].norm().item() > floor:
                    fail(name, f"gradient leak ({kind}): the {loss} loss sends a gradient into the {module}; "
                               f"{advice[module]}.", hint)
        if grads["actor"]["critic"].norm().item() > floor:
            fail(name, f"the actor gradient reaches the critic ({kind}): the values inside the actor's loss are "
                       "the target critic's, and the advantage is a constant.", hint)
        actor_problem = gradient_problem(grads["actor"]["actor"], expected_grads["actor"], floor)
        if grads["critic"]["actor"].norm().item() > floor:
            if actor_problem:
                fail(name, f"the critic loss sends a gradient into the actor and the actor's own gradient differs "
                           f"({kind}): are the weights w_t detached? They depend on the imagined states, hence on "
                           "the actions.", hint)
            fail(name, f"the critic loss sends a gradient into the actor ({kind}): the critic must regress on "
                       "constant targets: detached lambda-returns, read from detached features.", hint)
        values = {loss: mine[loss].detach().reshape(()).float() for loss in mine}
        if torch.allclose(values["actor"], -expected["actor"], rtol=1e-4) and expected["actor"].abs() > 1e-6:
            fail(name, f"the actor loss has the opposite sign ({kind}): the actor MAXIMISES the weighted returns "
                       "and entropy, so its loss is minus that.", hint)
        wrong = [loss for loss in ("actor", "critic")
                 if not torch.allclose(values[loss], expected[loss], rtol=1e-4, atol=1e-6)]
        if wrong:
            for shift, what in _OFF_BY_ONE:
                variant = dict(zip(("actor", "critic"), _variant_losses(ac, wm, start, start_cont, seed + 100,
                                                                       **shift), strict=True))
                if all(torch.allclose(values[k], variant[k], rtol=1e-4, atol=1e-6) for k in values):
                    fail(name, f"off-by-one between returns and values ({kind}): {what}.", hint)
            errors = ", ".join(f"{k} loss off by {(values[k] - expected[k]).item():.4g}" for k in wrong)
            fail(name, f"wrong loss value(s) ({kind}): {errors}.", hint)
        if actor_problem:
            fail(name, f"the loss values are right but the gradient of the actor {actor_problem} ({kind}): check "
                       "the stop-gradients (the advantage is a constant; with dynamics backprop the gradient flows "
                       "through the returns) and that the actor reads detached features.", hint)
        critic_problem = gradient_problem(grads["critic"]["critic"], expected_grads["critic"], floor)
        if critic_problem:
            fail(name, f"the loss values are right but the gradient of the critic {critic_problem} ({kind}).", hint)
    passed(name, fn)
