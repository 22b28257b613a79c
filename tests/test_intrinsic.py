"""Intrinsic rewards: per-sample shapes, Plan2Explore disagreement, curiosity error, training on real data only."""

import pytest
import torch

from dreamer_tutorial import Config
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
