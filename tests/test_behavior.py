"""Behaviour learning: lambda-returns, target critic, gradient routing, entropy bonus, action distributions."""

import math

import numpy as np
import pytest
import torch

from dreamer_tutorial import ActorCritic, Config, WorldModel, lambda_return
from dreamer_tutorial.behavior import Actor, OneHotCategorical, TanhNormal, TruncNormal, actor_loss, critic_loss, frozen


def python_lambda_return(reward, value, discount, bootstrap, lam):
    """The recursion written out on plain floats, one trajectory at a time."""
    horizon = len(reward)
    out, last = [0.0] * horizon, bootstrap
    for t in reversed(range(horizon)):
        v_next = value[t + 1] if t + 1 < horizon else bootstrap
        last = reward[t] + discount[t] * ((1 - lam) * v_next + lam * last)
        out[t] = last
    return out


def random_inputs(h=6, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(h, n, generator=g, dtype=torch.float64), torch.randn(h, n, generator=g, dtype=torch.float64),
            torch.rand(h, n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_lambda_return_matches_an_independent_recursion(lam):
    reward, value, discount, bootstrap = random_inputs()
    ours = lambda_return(reward, value, discount, bootstrap, lam)
    assert ours.shape == reward.shape
    for i in range(reward.shape[1]):
        expected = python_lambda_return(reward[:, i].tolist(), value[:, i].tolist(), discount[:, i].tolist(),
                                        bootstrap[i].item(), lam)
        np.testing.assert_allclose(ours[:, i].numpy(), expected, rtol=1e-12)


def test_lambda_return_closed_forms():
    reward, value, discount, bootstrap = random_inputs(h=5, n=3, seed=1)
    # lambda = 0: the one-step TD target r_t + d_t v_{t+1}.
    next_value = torch.cat([value[1:], bootstrap[None]])
    torch.testing.assert_close(lambda_return(reward, value, discount, bootstrap, 0.0), reward + discount * next_value)
    # lambda = 1: the discounted Monte-Carlo return, bootstrapped with v_H after the last step.
    mc = lambda_return(reward, value, discount, bootstrap, 1.0)
    for t in range(5):
        total, scale = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
        for k in range(t, 5):
            total = total + scale * reward[k]
            scale = scale * discount[k]
        torch.testing.assert_close(mc[t], total + scale * bootstrap)


def test_lambda_return_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(H, \.\.\.\)"):
        lambda_return(torch.zeros(5, 3), torch.zeros(5, 3), torch.zeros(4, 3), torch.zeros(3))


def make_parts(discrete: bool, **overrides):
    config = Config.preset("debug", **overrides)
    torch.manual_seed(0)
    wm = WorldModel(config, action_dim=3)
    ac = ActorCritic(config, wm.rssm.feat_dim, 3, discrete)
    batch = {"obs": torch.randint(0, 256, (2, 5, 64, 64, 3), dtype=torch.uint8), "action": torch.randn(2, 5, 3),
             "is_first": torch.zeros(2, 5, dtype=torch.bool)}
    with torch.no_grad():
        post, _ = wm.observe(batch)
    start = post.map(lambda x: x.flatten(0, 1))
    return config, wm, ac, start, torch.ones(10)


def test_target_critic_lags_until_the_copy_step():
    config, wm, ac, start, cont = make_parts(discrete=True, target_update_every=3)
    target_before = [p.clone() for p in ac.target_critic.parameters()]
    for update in range(1, 4):
        ac.train_step(wm, start, cont)
        same_as_before = all(torch.equal(a, b) for a, b in zip(ac.target_critic.parameters(), target_before))
        same_as_critic = all(torch.equal(a, b) for a, b in zip(ac.target_critic.parameters(), ac.critic.parameters()))
        if update < 3:
            assert same_as_before and not same_as_critic, f"target moved before the copy step (update {update})"
        else:
            assert same_as_critic, "target critic should equal the critic right after the copy step"


def imagined_returns(config, wm, ac, start):
    states, actions, dist = ac.imagine(wm, start, config.horizon)
    value = ac.value(states.feat, target=True)
    returns = lambda_return(wm.reward(states.feat[1:]), value[:-1], wm.discount(states.feat[1:]), value[-1],
                            config.lambda_)
    return states, actions, dist, value, returns


@pytest.mark.parametrize("discrete", [True, False])
def test_actor_loss_never_reaches_the_world_model_and_critic_loss_never_the_actor(discrete):
    config, wm, ac, start, cont = make_parts(discrete)
    with frozen(wm):
        states, actions, dist, value, returns = imagined_returns(config, wm, ac, start)
        loss, _ = actor_loss(dist, actions, returns, value[:-1], torch.ones_like(returns), ac.mix,
                             config.actor_entropy)
    loss.backward()
    assert all(p.grad is None for p in wm.parameters()), "actor loss produced gradients in the world model"
    assert all(p.requires_grad for p in wm.parameters()), "frozen() must restore requires_grad"
    actor_grads = [p.grad for p in ac.actor.parameters()]
    assert all(g is not None for g in actor_grads) and sum(g.abs().sum() for g in actor_grads) > 0
    ac.actor.zero_grad(set_to_none=True)
    critic_loss(ac.value(states.feat[:-1].detach()), returns, torch.ones_like(returns)).backward()
    assert all(p.grad is None for p in ac.actor.parameters()), "critic loss produced gradients in the actor"
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ac.critic.parameters())


def test_dynamics_backprop_differentiates_returns_through_the_frozen_model():
    config, wm, ac, start, cont = make_parts(discrete=False)
    with frozen(wm):
        *_, returns = imagined_returns(config, wm, ac, start)
    grads = torch.autograd.grad(returns.sum(), list(ac.actor.parameters()))
    assert sum(g.abs().sum() for g in grads) > 0  # returns depend on the actor via actions -> states -> rewards


@pytest.mark.parametrize("discrete", [True, False])
def test_entropy_bonus_pushes_towards_higher_entropy(discrete):
    torch.manual_seed(0)
    config, wm, ac, start, cont = make_parts(discrete)
    feat = start.feat.detach()
    actions = ac.actor(feat).rsample().detach()
    returns, baseline, weight = torch.randn(10), torch.randn(10), torch.rand(10)

    def grad_of_loss(entropy_scale):
        torch.manual_seed(1)  # the same noise each time (the tanh-Normal's entropy is a one-sample estimate)
        loss, _ = actor_loss(ac.actor(feat), actions, returns, baseline, weight, 0.0, entropy_scale)
        return torch.autograd.grad(loss, list(ac.actor.parameters()))

    g0, g1 = grad_of_loss(0.0), grad_of_loss(0.5)
    torch.manual_seed(1)
    entropy = (weight * ac.actor(feat).entropy()).mean()
    g_entropy = torch.autograd.grad(entropy, list(ac.actor.parameters()))
    for a, b, e in zip(g0, g1, g_entropy):
        torch.testing.assert_close(b - a, -0.5 * e, atol=1e-5, rtol=1e-4)  # the bonus adds -eta * grad H
    # A small gradient step on the entropy term alone increases the entropy.
    with torch.no_grad():
        for p, a, b in zip(ac.actor.parameters(), g0, g1):
            p -= 0.1 * (b - a)
        torch.manual_seed(1)
        entropy_after = (weight * ac.actor(feat).entropy()).mean()
    assert entropy_after > entropy


def test_action_distributions():
    torch.manual_seed(0)
    dist = OneHotCategorical(torch.tensor([[2.0, 0.0, -1.0]]).expand(5000, 3))
    samples = dist.rsample()
    assert torch.all(samples.sum(-1) == 1) and torch.all((samples == 0) | (samples == 1))
    torch.testing.assert_close(samples.mean(0), torch.tensor([2.0, 0.0, -1.0]).softmax(0), atol=0.03, rtol=0)
    assert torch.equal(dist.mode()[0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(dist.entropy()[0], torch.distributions.Categorical(logits=dist.logits[0]).entropy())

    mean, std = torch.tensor([[0.3, -1.0]]), torch.tensor([[0.5, 0.2]])
    tanh_normal = TanhNormal(mean.expand(20000, 2), std.expand(20000, 2))
    actions = tanh_normal.rsample()
    assert actions.abs().max() < 1
    torch.testing.assert_close(tanh_normal.mode()[0], torch.tanh(mean[0]))
    # log_prob is the change of variables: log N(atanh a) - log(1 - a^2).
    a = torch.tensor([[0.2, -0.5]])
    expected = (torch.distributions.Normal(mean, std).log_prob(torch.atanh(a)) - torch.log(1 - a ** 2)).sum(-1)
    torch.testing.assert_close(TanhNormal(mean, std).log_prob(a), expected)
    # The one-sample entropy estimate averages to -E[log p(a)].
    torch.testing.assert_close(tanh_normal.entropy().mean(), -tanh_normal.log_prob(actions).mean(), atol=0.02, rtol=0)


def test_actor_grad_mix_weights_dynamics_backprop_as_in_the_authors_code():
    assert Config().actor_grad_mix == 0.1  # the authors' default
    mixes = {grad: make_parts(False, actor_grad=grad, actor_grad_mix=0.3)[2].mix
             for grad in ("dynamics", "reinforce", "both", "auto")}
    assert mixes == {"dynamics": 1.0, "reinforce": 0.0, "both": 0.3, "auto": 1.0}
    assert make_parts(True)[2].mix == 0.0  # auto: REINFORCE for discrete actions

    config, wm, ac, start, cont = make_parts(discrete=False, actor_grad="both")
    params = list(ac.actor.parameters())
    with frozen(wm):
        states, actions, dist, value, returns = imagined_returns(config, wm, ac, start)
    weight = torch.rand_like(returns)

    def grad(loss):
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])

    # Written out independently of actor_loss: the two estimators' losses (entropy off).
    g_dynamics = grad(-(weight * returns).mean())
    advantage = (returns - value[:-1]).detach()
    g_reinforce = grad(-(weight * dist.log_prob(actions.detach()) * advantage).mean())
    assert g_dynamics.abs().sum() > 0 and g_reinforce.abs().sum() > 0
    for mix, expected in ((1.0, g_dynamics), (0.0, g_reinforce), (0.1, 0.1 * g_dynamics + 0.9 * g_reinforce)):
        loss, _ = actor_loss(dist, actions, returns, value[:-1], weight, mix, entropy_scale=0.0)
        torch.testing.assert_close(grad(loss), expected, rtol=1e-5, atol=1e-9)


# --- the truncated Normal ----------------------------------------------------------------------------------------
def normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def trunc_normal_log_density(a, loc, scale):
    """log(normal pdf / (Phi(beta) - Phi(alpha))) on [-1, 1], from math.erf: independent of torch.special."""
    z = normal_cdf((1 - loc) / scale) - normal_cdf((-1 - loc) / scale)
    return -0.5 * ((a - loc) / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi) * z)


EXTREMES = [(0.3, 0.5), (0.0, 0.1), (0.999, 0.1), (-0.999, 0.1), (1.0, 0.1), (0.0, 2.1), (0.95, 2.1), (-1.0, 2.1)]


@pytest.mark.parametrize("loc, scale", EXTREMES)
def test_trunc_normal_density_and_entropy_against_numerical_integration(loc, scale):
    grid = torch.linspace(-1, 1, 400_001, dtype=torch.float64)
    dist = TruncNormal(torch.full((grid.numel(), 1), loc, dtype=torch.float64),
                       torch.full((grid.numel(), 1), scale, dtype=torch.float64))
    log_p = dist.log_prob(grid[:, None])
    assert log_p.shape == grid.shape and torch.isfinite(log_p).all()
    for a in (-0.99, -0.3, 0.0, 0.5, 0.999):
        i = int(round((a + 1) / 2 * (grid.numel() - 1)))
        assert log_p[i].item() == pytest.approx(trunc_normal_log_density(grid[i].item(), loc, scale), abs=1e-9)
    p = log_p.exp()
    assert torch.trapezoid(p, grid).item() == pytest.approx(1.0, abs=1e-6)
    assert dist.entropy()[0].item() == pytest.approx(torch.trapezoid(-p * log_p, grid).item(), abs=1e-6)


def analytic_mean(loc, scale):
    alpha, beta = (-1 - loc) / scale, (1 - loc) / scale
    pdf = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # noqa: E731
    return loc + scale * (pdf(alpha) - pdf(beta)) / (normal_cdf(beta) - normal_cdf(alpha))


@pytest.mark.parametrize("loc, scale", EXTREMES)
def test_trunc_normal_samples_follow_the_density(loc, scale):
    torch.manual_seed(0)
    n = 200_000
    dist = TruncNormal(torch.full((n, 1), loc), torch.full((n, 1), scale))  # float32, as in the actor
    samples = dist.rsample()[:, 0]
    assert torch.isfinite(samples).all() and samples.min() >= -1 + 1e-6 - 1e-7 and samples.max() <= 1 - 1e-6 + 1e-7
    standard_error = samples.std().item() / n ** 0.5
    assert samples.double().mean().item() == pytest.approx(analytic_mean(loc, scale), abs=5 * standard_error)
    # Histogram against the probabilities of 20 bins from the CDF.
    edges = torch.linspace(-1, 1, 21, dtype=torch.float64)
    cdf = torch.tensor([normal_cdf((e - loc) / scale) for e in edges.tolist()], dtype=torch.float64)
    expected = (cdf[1:] - cdf[:-1]) / (cdf[-1] - cdf[0])
    observed = torch.histc(samples.double(), bins=20, min=-1, max=1) / n
    assert (observed - expected).abs().max() < 0.005
    assert dist.mode()[0, 0].item() == pytest.approx(loc)


@pytest.mark.parametrize("loc, scale", [(0.3, 0.5), (-0.6, 0.2), (0.8, 2.1), (0.0, 0.1)])
def test_trunc_normal_rsample_gradients_match_finite_differences(loc, scale):
    def f(x):
        return torch.sin(3 * x) + x ** 2

    def mean_f(loc, scale):
        torch.manual_seed(0)  # fixed noise: the same uniforms u for every (loc, scale)
        shape = (100_000, 1)
        return f(TruncNormal(loc.expand(shape), scale.expand(shape)).rsample()).mean()

    params = torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64)
    params = [p.requires_grad_(True) for p in params]
    grads = torch.autograd.grad(mean_f(*params), params)
    assert all(torch.isfinite(g) for g in grads)
    eps = 1e-5
    with torch.no_grad():
        for i in range(2):
            plus = [p + eps * (j == i) for j, p in enumerate(params)]
            minus = [p - eps * (j == i) for j, p in enumerate(params)]
            finite_difference = (mean_f(*plus) - mean_f(*minus)) / (2 * eps)
            assert grads[i].item() == pytest.approx(finite_difference.item(), abs=1e-4)
    # And the pathwise gradient estimates the gradient of the exact expectation (quadrature on a grid).
    grid = torch.linspace(-1, 1, 100_001, dtype=torch.float64)

    def exact(loc, scale):
        shape = (grid.numel(), 1)
        p = TruncNormal(loc.expand(shape), scale.expand(shape)).log_prob(grid[:, None]).exp()
        return torch.trapezoid(f(grid) * p, grid)

    exact_grads = torch.autograd.grad(exact(*params), params)
    for g, e in zip(grads, exact_grads):
        assert g.item() == pytest.approx(e.item(), abs=0.03)


def test_trunc_normal_actor_heads_stay_finite_at_extreme_outputs():
    action_dim, min_std = 3, 0.1
    actor = Actor(2 * action_dim, action_dim, discrete=False, units=8, layers=1, min_std=min_std)
    actor.net = torch.nn.Identity()  # feed the raw (mean, std) outputs directly
    raw_mean = torch.tensor([-30.0, 0.0, 30.0])
    raw_std = torch.tensor([-1e4, 0.0, 1e4])
    out = torch.cat([raw_mean, raw_std])[None].expand(1000, 6).clone().requires_grad_(True)
    dist = actor(out)
    assert isinstance(dist, TruncNormal)
    torch.testing.assert_close(dist.mode()[0], torch.tanh(raw_mean))
    torch.testing.assert_close(dist.scale[0], torch.tensor([min_std, 1 + min_std, 2 + min_std]))
    torch.manual_seed(0)
    action = dist.rsample()
    assert action.abs().max() < 1
    objective = (action ** 2).sum() + dist.log_prob(action.detach()).sum() + dist.entropy().sum()
    assert torch.isfinite(objective)
    (grad,) = torch.autograd.grad(objective, out)
    assert torch.isfinite(grad).all()
    # The DreamerV1 option and the config switch.
    assert isinstance(Actor(4, 2, False, 8, 1, dist="tanh_normal")(torch.zeros(1, 4)), TanhNormal)
    config, wm, ac, start, cont = make_parts(discrete=False, actor_dist="tanh_normal")
    assert isinstance(ac.actor(start.feat), TanhNormal)
    with pytest.raises(ValueError, match="actor_dist must be one of trunc_normal, tanh_normal"):
        Config(actor_dist="normal")


@pytest.mark.parametrize("u", [0.0, 2 ** -24, 0.5, 1 - 2 ** -24])  # torch.rand's extremes in float32
def test_trunc_normal_extreme_quantiles_give_finite_samples_and_gradients(u, monkeypatch):
    monkeypatch.setattr(torch, "rand_like", lambda x: torch.full_like(x, u))
    loc = torch.tensor([[-1.0, -0.999, 0.0, 0.999, 1.0]] * 2, requires_grad=True)
    scale = torch.tensor([[0.1] * 5, [2.1] * 5], requires_grad=True)
    sample = TruncNormal(loc, scale).rsample()
    assert torch.isfinite(sample).all() and sample.abs().max() <= 1 - 1e-6 + 1e-7
    grads = torch.autograd.grad(sample.sum(), (loc, scale))
    assert all(torch.isfinite(g).all() for g in grads)
