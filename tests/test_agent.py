"""The Dreamer agent: acting with a recurrent state, one train_step changing every parameter group, bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamer_tutorial import Config, Dreamer
from dreamer_tutorial.replay import SequenceReplay

OBS = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


def make_agent(discrete, **overrides):
    torch.manual_seed(0)
    act = gym.spaces.Discrete(4) if discrete else gym.spaces.Box(-1, 1, (2,), np.float32)
    return Dreamer(Config.preset("debug", device="cpu", **overrides), OBS, act)


def random_batch(agent, b=3, t=6, seed=0):
    rng = np.random.default_rng(seed)
    replay = SequenceReplay(1000, (64, 64, 3), agent.action_dim)
    for i in range(40):
        action = np.eye(agent.action_dim)[rng.integers(agent.action_dim)] if agent.discrete else rng.uniform(-1, 1, 2)
        replay.add(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), action, rng.normal(), i % 20 == 0,
                   i % 20 == 19)
    return replay.sample(b, t)


@pytest.mark.parametrize("discrete,intrinsic,expl", [(True, "none", False), (False, "none", False),
                                                     (True, "plan2explore", True), (False, "curiosity", False)])
def test_train_step_changes_every_parameter_group(discrete, intrinsic, expl):
    # No free nats here: below them the KL (rightly) sends no gradient to the prior.
    agent = make_agent(discrete, intrinsic=intrinsic, expl_behavior=expl, kl_free=0.0)
    groups = {"encoder": agent.world_model.encoder, "rssm": agent.world_model.rssm,
              "decoder": agent.world_model.decoder, "reward": agent.world_model.reward_head,
              "discount": agent.world_model.discount_head, "actor": agent.task_behavior.actor,
              "critic": agent.task_behavior.critic}
    if agent.intrinsic is not None:
        groups["intrinsic"] = agent.intrinsic
    if agent.expl_behavior is not None:
        groups["expl_actor"] = agent.expl_behavior.actor
    before = {k: [p.clone() for p in m.parameters()] for k, m in groups.items()}
    metrics = agent.train_step(random_batch(agent))
    for name, module in groups.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], module.parameters())]
        assert all(changed), f"{name}: {changed.count(False)} parameter tensors did not change"
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    for key in ("model_loss", "image_loss", "reward_loss", "kl", "actor_loss", "critic_loss"):
        assert key in metrics


def test_policy_keeps_and_resets_its_recurrent_state():
    agent = make_agent(discrete=False)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 2, 64, 64, 3), dtype=np.uint8)
    _, state = agent.policy(frames[0])
    _, state_cont = agent.policy(frames[1], state, training=False)
    _, state_reset = agent.policy(frames[1], state, training=False, is_first=np.array([True, False]))
    _, state_fresh = agent.policy(frames[1], None, training=False)
    torch.testing.assert_close(state_reset[0].deter[0], state_fresh[0].deter[0])  # reset row = fresh start
    torch.testing.assert_close(state_reset[0].deter[1], state_cont[0].deter[1])  # other row keeps its memory
    assert not torch.allclose(state_cont[0].deter[0], state_fresh[0].deter[0])  # memory matters


def test_policy_acts_greedily_when_evaluating_and_samples_when_training():
    for discrete in (True, False):
        agent = make_agent(discrete)
        frame = np.full((3, 64, 64, 3), 128, np.uint8)
        a1, (latent, prev_action) = agent.policy(frame, training=False)
        # Greedy: the mode of the actor's distribution at the (sampled) posterior state.
        mode = agent.task_behavior.actor(latent.feat).mode()
        np.testing.assert_allclose(a1, mode.detach().numpy(), atol=1e-6)
        torch.testing.assert_close(prev_action, mode.detach())
        torch.manual_seed(1)
        sampled = np.stack([agent.policy(frame[:1], training=True)[0][0] for _ in range(30)])
        assert len(np.unique(sampled.round(4), axis=0)) > 1  # exploration: training actions vary
        assert a1.shape == (3, agent.action_dim)
        if discrete:
            assert np.all(a1.sum(-1) == 1)
        else:
            assert np.all(np.abs(a1) <= 1)


def test_latent_mode_acts_on_the_most_likely_latent_and_is_deterministic():
    agent = make_agent(discrete=False)
    frames = np.random.default_rng(0).integers(0, 256, (3, 2, 64, 64, 3), dtype=np.uint8)
    runs = []
    for seed in (1, 2):  # other RNG streams: the posterior samples would differ, the modes do not
        torch.manual_seed(seed)
        state, steps = None, []
        for t in range(3):
            actions, state = agent.policy(frames[t], state, training=False, latent_mode=True)
            latent = state[0]
            expected = torch.nn.functional.one_hot(latent.logits.argmax(-1), latent.logits.shape[-1]).float()
            torch.testing.assert_close(latent.stoch, expected)  # z_t: one-hot of each categorical's mode
            mode = agent.task_behavior.actor(latent.feat).mode().detach().numpy()
            np.testing.assert_allclose(actions, mode, atol=1e-6)
            steps.append(actions)
        runs.append(np.stack(steps))
    np.testing.assert_array_equal(runs[0], runs[1])
    torch.manual_seed(1)
    sampled = agent.policy(frames[0], None, training=False)[1][0]
    assert not torch.equal(sampled.stoch, latent_mode_stoch := agent.policy(frames[0], None, training=False,
                                                                           latent_mode=True)[1][0].stoch)
    assert latent_mode_stoch.sum(-1).eq(1).all() and sampled.stoch.sum(-1).eq(1).all()  # both one-hot


def test_sampled_evaluation_draws_from_the_task_actor_not_the_exploration_actor():
    # training=False, sample=True: the task actor's distribution (not its mode, not Plan2Explore's actor).
    agent = make_agent(discrete=False, intrinsic="plan2explore", expl_behavior=True)
    frame = np.full((5, 64, 64, 3), 128, np.uint8)
    torch.manual_seed(3)
    actions, (latent, _) = agent.policy(frame, training=False, sample=True)
    torch.manual_seed(3)
    latent_again, _ = agent.world_model.rssm.obs_step(
        agent.world_model.rssm.initial(5, agent.device), torch.zeros(5, agent.action_dim),
        agent.world_model.embed(torch.as_tensor(frame)), torch.ones(5, dtype=torch.bool))
    torch.testing.assert_close(latent_again.feat, latent.feat)  # same posterior draw: same RNG stream so far
    task = agent.task_behavior.actor(latent.feat).rsample()
    np.testing.assert_allclose(actions, task.detach().numpy(), atol=1e-6)
    mode = agent.task_behavior.actor(latent.feat).mode().detach().numpy()
    assert np.abs(actions - mode).max() > 1e-3  # a draw, not the greedy action


def test_bad_observations_and_batches_are_rejected():
    agent = make_agent(discrete=True)
    with pytest.raises(TypeError, match="uint8"):
        agent.policy(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"64, 64, 3"):
        agent.policy(np.zeros((1, 3, 64, 64), np.uint8))
    batch = random_batch(agent)
    with pytest.raises(ValueError, match="missing"):
        agent.train_step({k: v for k, v in batch.items() if k != "reward"})
    with pytest.raises(ValueError, match=r"batch\['action'\] must have shape"):
        agent.train_step({**batch, "action": batch["action"][..., :2]})
    with pytest.raises(ValueError, match="Dreamer expects uint8 observations"):
        Dreamer(Config.preset("debug"), gym.spaces.Box(0, 1, (96, 96, 3), np.float32), gym.spaces.Discrete(3))


def test_nonfinite_loss_skips_the_update_without_touching_weights():
    agent = make_agent(discrete=True)
    batch = random_batch(agent)
    batch["reward"][0, 0] = float("nan")
    before = [p.clone() for p in agent.parameters()]
    metrics = agent.train_step(batch)
    assert metrics["nonfinite_updates"] == 1
    assert all(torch.equal(a, b) for a, b in zip(before, agent.parameters()))


def test_compiled_agent_keeps_checkpoint_names():
    """config.compile compiles networks in place: checkpoints load into an eager agent and back."""
    plain, compiled = make_agent(discrete=False), make_agent(discrete=False, compile=True)
    assert list(plain.state_dict()) == list(compiled.state_dict())
    plain.load_checkpoint_state(compiled.checkpoint_state())
