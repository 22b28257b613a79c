"""Intrinsic rewards: per-sample shapes, Plan2Explore disagreement (members' std), curiosity error, gradients that
reach the imagined states but not the predictors, training on real data only."""

import numpy as np
import pytest
import torch

from dreamer_tutorial import ActorCritic, Config, WorldModel
from dreamer_tutorial.behavior import frozen
from dreamer_tutorial.intrinsic import Curiosity, Plan2Explore, make_intrinsic
from dreamer_tutorial.rssm import State

FEAT, ACT, TARGET = 12, 2, 8


def make(kind, **overrides):
    torch.manual_seed(0)
    config = Config.preset("debug", intrinsic=kind, intrinsic_lr=3e-3, **overrides)
    return make_intrinsic(config, FEAT, ACT, TARGET)


def fake_replay_states(n_seq=8, length=6, seed=0):
    """A (B, T) posterior-like state sequence whose next latent is a fixed function of (feat, action)."""
    g = torch.Generator().manual_seed(seed)
    deter = torch.randn(n_seq, length, FEAT - TARGET, generator=g)
    stoch = torch.zeros(n_seq, length, 2, 4)
    index = torch.randint(0, 4, (n_seq, length, 2), generator=g)
    stoch.scatter_(-1, index[..., None], 1.0)
    action = torch.randn(n_seq, length, ACT, generator=g)
    return State(deter, stoch, stoch), action, torch.zeros(n_seq, length, dtype=torch.bool)


@pytest.mark.parametrize("kind", ["curiosity", "plan2explore"])
def test_rewards_are_per_sample_and_finite(kind):
    module = make(kind)
    feat, action, target = torch.randn(7, FEAT), torch.randn(7, ACT), torch.rand(7, TARGET)
    reward = module.reward(feat, action, target)
    assert reward.shape == (7,) and torch.isfinite(reward).all() and (reward >= 0).all()
    # Imagined rewards: one per transition of an (H + 1)-state rollout.
    states = State(torch.randn(5, 3, FEAT - TARGET), torch.rand(5, 3, 2, 4), torch.rand(5, 3, 2, 4))
    assert module.imagined_reward(states, torch.randn(4, 3, ACT)).shape == (4, 3)


@pytest.mark.parametrize("kind", ["curiosity", "plan2explore"])
def test_wrong_input_sizes_give_a_clear_error(kind):
    module = make(kind)
    with pytest.raises(ValueError, match=f"feat \\(\\.\\.\\., {FEAT}\\) and action \\(\\.\\.\\., {ACT}\\)"):
        module.reward(torch.randn(7, 1), torch.randn(7, ACT), torch.rand(7, TARGET))


@pytest.mark.parametrize("log", [False, True])
def test_disagreement_is_the_members_standard_deviation(log):
    """The authors' expl.py: std across members (population), mean over dimensions, optionally its log."""
    module = make("plan2explore", ensemble_size=4, disag_log=log)
    feat, action = torch.randn(9, FEAT), torch.randn(9, ACT)
    with torch.no_grad():
        members = [module.predict(feat, action)[k].numpy().astype(np.float64) for k in range(4)]
    mean = sum(members) / 4
    spread = np.sqrt(sum((m - mean) ** 2 for m in members) / 4).mean(-1)  # (9,)
    expected = np.log(spread) if log else spread
    np.testing.assert_allclose(module.reward(feat, action).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["curiosity", "plan2explore"])
def test_reward_gradient_reaches_the_inputs_but_not_the_predictors(kind):
    module = make(kind)
    feat = torch.randn(7, FEAT, requires_grad=True)
    action = torch.randn(7, ACT, requires_grad=True)
    module.reward(feat, action, torch.rand(7, TARGET)).sum().backward()
    for grad in (feat.grad, action.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in module.parameters()), "the reward produced gradients in the predictors"
    assert all(p.requires_grad for p in module.parameters()), "the predictors must stay trainable"


@pytest.mark.parametrize("kind", ["curiosity", "plan2explore"])
def test_actor_follows_novelty_through_imagination_and_replay_still_trains_the_predictors(kind):
    """Dynamics backprop: the imagined intrinsic return depends on the actor through actions -> states -> reward."""
    config = Config.preset("debug", intrinsic=kind)
    torch.manual_seed(0)
    wm = WorldModel(config, action_dim=ACT)
    feat_dim, target_dim = wm.rssm.feat_dim, config.stoch * config.classes
    module = make_intrinsic(config, feat_dim, ACT, target_dim)
    ac = ActorCritic(config, feat_dim, ACT, discrete=False)
    batch = {"obs": torch.randint(0, 256, (2, 5, 64, 64, 3), dtype=torch.uint8), "action": torch.randn(2, 5, ACT),
             "is_first": torch.zeros(2, 5, dtype=torch.bool)}
    with torch.no_grad():
        post, _ = wm.observe(batch)
    with frozen(wm):
        states, actions, _ = ac.imagine(wm, post.map(lambda x: x.flatten(0, 1)), config.horizon)
        intrinsic_return = module.imagined_reward(states, actions).sum()
    intrinsic_return.backward()
    actor_grads = [p.grad for p in ac.actor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in actor_grads)
    assert sum(g.abs().sum() for g in actor_grads) > 0
    assert all(p.grad is None for p in module.parameters()), "the actor's loss reached the predictors"
    before = [p.clone() for p in module.parameters()]
    loss = module.train_step(post, batch["action"], batch["is_first"])["intrinsic_model_loss"]
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters())), "replay must train them"


def test_plan2explore_disagreement_small_on_trained_large_on_unseen():
    module = make("plan2explore", ensemble_size=5)
    assert isinstance(module, Plan2Explore)
    post, action, is_first = fake_replay_states()
    for _ in range(300):
        module.train_step(post, action, is_first)
    seen = module.reward(post.feat[:, :-1], action[:, 1:]).mean()
    unseen = module.reward(5 * torch.randn(40, FEAT), 5 * torch.randn(40, ACT)).mean()
    assert seen < 0.1 * unseen, (seen.item(), unseen.item())


def test_curiosity_error_drops_on_a_trained_transition():
    module = make("curiosity")
    assert isinstance(module, Curiosity)
    post, action, is_first = fake_replay_states()
    feat, act, target = post.feat[:, :-1], action[:, 1:], post.stoch[:, 1:].flatten(-2)
    before = module.reward(feat, act, target).mean()
    for _ in range(300):
        module.train_step(post, action, is_first)
    after = module.reward(feat, act, target).mean()
    assert after < 0.2 * before, (before.item(), after.item())


def test_transitions_across_episode_starts_are_not_trained_on():
    module = make("curiosity")
    post, action, _ = fake_replay_states()
    is_first = torch.ones(post.deter.shape[:2], dtype=torch.bool)  # every pair crosses an episode start
    before = [p.clone() for p in module.parameters()]
    metrics = module.train_step(post, action, is_first)
    assert metrics["intrinsic_model_loss"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_make_intrinsic_none():
    assert make_intrinsic(Config.preset("debug"), FEAT, ACT, TARGET) is None
