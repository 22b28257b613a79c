"""Acting, replay and evaluation line up with the environment frame by frame (DESIGN.md, "Acting alignment").

The env below draws its own step index into every frame, so each replay row and each policy call can be checked
against what the environment really did: the policy's latent is reset on exactly the reset frames, reset rows
hold a zero action and a zero reward, every other row holds the action that led to its frame and that step's
reward, and `evaluate` returns whole-episode returns.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamer_tutorial import Config, evaluate, train
from dreamer_tutorial.agent import Dreamer
from dreamer_tutorial.train import _Trainer


class StepIndexEnv(gym.Env):
    """Frame pixel (0, 0, 0) = step index in the episode (0 on the reset frame), pixel (0, 0, 1) = env id.
    Step k of an episode pays reward k; episode e of env i lasts 3 + (e + i) % 4 steps and ends terminated
    (even e) or truncated (odd e). Every action received is logged."""

    def __init__(self, env_id: int = 0):
        self.env_id = env_id
        self.observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.episode, self.t, self.actions = -1, 0, []

    def _frame(self):
        frame = np.zeros((64, 64, 3), np.uint8)
        frame[0, 0, 0], frame[0, 0, 1] = self.t, self.env_id
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._frame(), {}

    def step(self, action):
        self.actions.append(np.array(action, np.float32))
        self.t += 1
        done = self.t == 3 + (self.episode + self.env_id) % 4
        terminated, truncated = done and self.episode % 2 == 0, done and self.episode % 2 == 1
        return self._frame(), float(self.t), terminated, truncated, {}


def _builder():
    made = []

    def env_fn():
        made.append(StepIndexEnv(len(made)))
        return made[-1]

    return env_fn, made


def _spy_policy(monkeypatch):
    calls = []
    original = Dreamer.policy

    def policy(self, obs, state=None, training=True, is_first=None):
        obs = np.asarray(obs)
        prev_action = None if state is None else state[1].cpu().numpy().copy()
        first = np.ones(len(obs), bool) if state is None else np.asarray(is_first, bool).copy()
        actions, new_state = original(self, obs, state, training, is_first)
        calls.append({"t": obs[:, 0, 0, 0].astype(int), "is_first": first, "prev_action": prev_action,
                      "actions": actions.copy()})
        return actions, new_state

    monkeypatch.setattr(Dreamer, "policy", policy)
    return calls


def _config(tmp_path, num_envs, **overrides):
    values = dict(device="cpu", num_envs=num_envs, steps=60 * num_envs, prefill=24 * num_envs, train_every=10,
                  eval_every=10_000, eval_episodes=2, log_every=10_000, video_every_eval=False,
                  replay_capacity=10_000, logdir=str(tmp_path / "run"))
    values.update(overrides)
    return Config.preset("debug", **values)


@pytest.mark.parametrize("num_envs", [1, 3])
def test_training_resets_the_latent_on_reset_frames_and_replay_rows_match_the_env(tmp_path, monkeypatch, num_envs):
    env_fn, made = _builder()
    calls = _spy_policy(monkeypatch)
    trainer = _Trainer(_config(tmp_path, num_envs), env_fn, resume=False, progress=False)
    monkeypatch.setattr(trainer, "_evaluate", lambda: {"mean": 0.0, "std": 0.0, "returns": [0.0]})
    sent, step = [], trainer.envs.step
    monkeypatch.setattr(trainer.envs, "step", lambda actions: (sent.append(np.array(actions)), step(actions))[1])
    train_envs = made[:num_envs]  # made in order: the training vector env's sub-envs come first
    trainer.run()
    sent = np.stack(sent)  # (steps, n, A): what the loop sent, random actions during prefill

    # The policy acts on every frame (prefill included, so it never starts mid-episode from a zero state) and
    # resets its latent exactly on reset frames.
    acting = [c for c in calls if len(c["t"]) == num_envs]
    assert len(acting) == len(sent) == trainer.step // num_envs
    for call in acting:
        np.testing.assert_array_equal(call["is_first"], call["t"] == 0)
    # The latent is updated with the action that was sent on the previous frame (random during prefill).
    np.testing.assert_allclose(np.stack([c["prev_action"] for c in acting[1:]]), sent[:-1], atol=1e-6)

    replay = trainer.replay
    for i, env in enumerate(train_envs):
        rows = int(replay.filled[i])
        assert rows == len(sent) + 1  # the reset frame, then one row per step
        t = replay.obs[i, :rows, 0, 0, 0].astype(int)
        assert np.all(replay.obs[i, :rows, 0, 0, 1] == i)
        first = replay.is_first[i, :rows]
        np.testing.assert_array_equal(first, t == 0)
        assert first.sum() == env.episode + 1  # one first row per episode, no second reset row
        np.testing.assert_array_equal(replay.reward[i, :rows], t)  # step k pays k, reset rows 0
        assert np.all(replay.action[i, :rows][first] == 0)
        # Row j + 1 comes from step j: unless it is a reset row (the NEXT_STEP autoreset discarded the action
        # sent on the terminal frame), it holds the action sent at step j, which the env really applied.
        applied = ~first[1:]
        np.testing.assert_allclose(replay.action[i, 1:rows][applied], sent[applied, i], atol=1e-6)
        np.testing.assert_allclose(np.stack(env.actions), sent[applied, i], atol=1e-6)
        # is_terminal exactly on the last frame of an episode that terminated (even episodes, not truncated).
        episode = np.cumsum(first) - 1
        last = ~first & (t == 3 + (episode + i) % 4)
        np.testing.assert_array_equal(replay.is_terminal[i, :rows], last & (episode % 2 == 0))


@pytest.mark.parametrize("num_envs", [1, 3])
def test_evaluate_returns_whole_episode_returns_and_resets_the_latent(tmp_path, monkeypatch, num_envs):
    config = _config(tmp_path, num_envs)
    env_fn, made = _builder()
    envs = gym.vector.SyncVectorEnv([env_fn] * num_envs, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    agent = Dreamer(config, envs.single_observation_space, envs.single_action_space)
    calls = _spy_policy(monkeypatch)
    torch.manual_seed(0)
    result = evaluate(agent, envs, episodes=7, record=True)
    # Episode e of env i lasts L = 3 + (e + i) % 4 steps with rewards 1..L: return L (L + 1) / 2.
    expected = []
    for i in range(num_envs):
        for e in range(len(range(i, 7, num_envs))):
            length = 3 + (e + i) % 4
            expected.append(length * (length + 1) / 2)
    assert result["returns"] == expected
    for call in calls:
        np.testing.assert_array_equal(call["is_first"], call["t"] == 0)
    # The recorded first episode runs from its reset frame to its last frame.
    assert result["frames"][:, 0, 0, 0].tolist() == [0, 1, 2, 3]


def test_train_reports_whole_episode_returns(tmp_path):
    env_fn, _ = _builder()
    result = train(_config(tmp_path, 1, steps=40, prefill=40, eval_episodes=3), env_fn=env_fn, progress=False)
    # The evaluation env is the second one made (id 1). It is reset once when the run seeds it and once by
    # `evaluate`, so the evaluated episodes are e = 1, 2, 3, of 3 + (e + 1) % 4 = 5, 6 and 3 steps.
    assert result["eval_returns"] == [15.0, 21.0, 6.0]
