"""Behaviour learning: lambda-returns, target critic, gradient routing, entropy bonus, action distributions."""

import numpy as np
import pytest
import torch

from dreamer_tutorial import ActorCritic, Config, WorldModel, lambda_return
from dreamer_tutorial.behavior import OneHotCategorical, TanhNormal, actor_loss, critic_loss, frozen


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
        loss, _ = actor_loss(dist, actions, returns, value[:-1], torch.ones_like(returns), ac.reinforce,
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
        torch.manual_seed(1)  # the continuous entropy is a one-sample estimate: use the same noise
        loss, _ = actor_loss(ac.actor(feat), actions, returns, baseline, weight, 1.0, entropy_scale)
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
