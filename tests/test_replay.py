"""Sequence replay: alignment convention, episode boundaries, ring wrap, memory, bad input, state round trip."""

import numpy as np
import pytest
import torch

from dreamer_tutorial.replay import SequenceReplay


def fill_episodes(replay, episode_lengths, stream=None):
    """Write episodes where frame pixels encode (episode, step) and actions/rewards encode the step.

    Row t of an episode: obs = step t, action = the action that led to it (t, 0 at the first step),
    reward = reward received with it (10 * t), is_first at t = 0, is_terminal at the last step.
    """
    n = replay.num_streams
    for ep, length in enumerate(episode_lengths):
        for t in range(length + 1):
            obs = np.zeros((n, 64, 64, 3), np.uint8)
            obs[..., 0], obs[..., 1] = ep, t
            action = np.full((n, 2), float(t))
            replay.add(obs, action, np.full(n, 10.0 * t), np.full(n, t == 0), np.full(n, t == length))


def test_alignment_holds_after_sampling():
    replay = SequenceReplay(10_000, (64, 64, 3), action_dim=2, seed=1)
    fill_episodes(replay, [30, 40, 25])
    batch = replay.sample(64, 12)
    step = batch["obs"][..., 0, 0, 1].float()  # the step index drawn into each frame
    # The action stored with obs_t is the action that led to it; the reward the one received with it.
    torch.testing.assert_close(batch["action"][..., 0], step)
    torch.testing.assert_close(batch["reward"], 10 * step)
    first = batch["is_first"]
    assert torch.all(first[:, 0])  # every window starts a fresh model state
    assert torch.all(first[:, 1:] == (step[:, 1:] == 0))  # inside a window: exactly at episode starts


def test_windows_never_mix_episodes_without_is_first():
    replay = SequenceReplay(300, (64, 64, 3), action_dim=2, num_streams=2, seed=0)
    rng = np.random.default_rng(0)
    fill_episodes(replay, rng.integers(3, 20, size=40))  # wraps the ring several times
    assert len(replay) == 300
    for _ in range(20):
        batch = replay.sample(32, 16)
        episode = batch["obs"][..., 0, 0, 0].long()
        step = batch["obs"][..., 0, 0, 1].long()
        changed = episode[:, 1:] != episode[:, :-1]
        assert torch.all(batch["is_first"][:, 1:][changed]), "episode changed without is_first"
        # Within an episode the steps are consecutive: no jump across the ring's write position.
        same = ~changed
        assert torch.all((step[:, 1:] - step[:, :-1])[same] == 1)


def test_bytes_per_step_is_close_to_a_raw_frame():
    replay = SequenceReplay(1000, (64, 64, 3), action_dim=3)
    assert replay.obs.dtype == np.uint8
    assert replay.bytes_per_step <= 13_000
    assert replay.bytes_per_step == 64 * 64 * 3 + 4 * 3 + 4 + 1 + 1


def test_bad_input_is_rejected():
    replay = SequenceReplay(100, (64, 64, 3), action_dim=2)
    with pytest.raises(TypeError, match="uint8"):
        replay.add(np.zeros((64, 64, 3), np.float32), np.zeros(2), 0.0, True, False)
    with pytest.raises(ValueError, match=r"\(1, 64, 64, 3\)"):
        replay.add(np.zeros((3, 64, 64), np.uint8), np.zeros(2), 0.0, True, False)
    with pytest.raises(ValueError, match="no stream holds"):
        replay.sample(2, 10)


def test_state_dict_round_trip_continues_identically():
    a = SequenceReplay(200, (64, 64, 3), action_dim=2, seed=3)
    fill_episodes(a, [50, 60, 70, 30])  # wraps
    b = SequenceReplay(200, (64, 64, 3), action_dim=2, seed=99)
    b.load_state_dict(a.state_dict())
    assert len(a) == len(b) and np.array_equal(a.pos, b.pos)
    sample_a, sample_b = a.sample(8, 10), b.sample(8, 10)
    for key, value in sample_a.items():
        assert torch.equal(value, sample_b[key]), key
