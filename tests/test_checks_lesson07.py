"""Lesson 07 graders: they accept the reference and independent correct answers, and reject the typical mistakes
(missing reset, a reset one frame late, sampling in evaluation, a gradient leak, an inverted continuation flag,
gradients not zeroed) with a message that names them."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from dreamer_tutorial import ActorCritic, Config, Dreamer, WorldModel, checks, make_env
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.networks import init_weights, preprocess
from dreamer_tutorial.optim import AdamWithDecay
from dreamer_tutorial.rssm import State


def stub(*args, **kwargs):
    raise NotImplementedError


class Parts(nn.Module):
    """Lesson 07's MyDreamer.__init__ (given in the lesson): the package's parts, assembled."""

    def __init__(self, config, obs_space, act_space):
        super().__init__()
        self.config = config
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.action_dim = int(act_space.n) if self.discrete else int(act_space.shape[0])
        self.world_model = WorldModel(config, self.action_dim)
        self.task_behavior = ActorCritic(config, self.world_model.rssm.feat_dim, self.action_dim, self.discrete)
        init_weights(self, config.init)
        self.model_opt = AdamWithDecay(self.world_model.parameters(), config.model_lr, config.adam_eps,
                                       config.weight_decay)


class Reference(Parts):
    policy = checks.reference_policy
    train_step = checks.reference_train_step


class Other(Parts):
    """A second, differently written correct solution: its own reset, preprocessing and start states."""

    def policy(self, obs, state=None, training=True, is_first=None):
        with torch.no_grad():
            obs = torch.as_tensor(obs)
            n = len(obs)
            if state is None:
                rssm = self.world_model.rssm
                state = (State(torch.zeros(n, rssm.deter_dim), *2 * [torch.zeros(n, rssm.stoch_dim, rssm.classes)]),
                         torch.zeros(n, self.action_dim))
                is_first = None
            latent, action = state
            if is_first is not None:
                keep = torch.as_tensor(~np.asarray(is_first)).float()
                latent = State(latent.deter * keep[:, None], latent.stoch * keep[:, None, None],
                               latent.logits * keep[:, None, None])
                action = action * keep[:, None]
            embed = self.world_model.encoder(preprocess(obs))
            latent, _ = self.world_model.rssm.obs_step(latent, action, embed)
            dist = self.task_behavior.actor(latent.feat)
            action = dist.mode() if not training else dist.rsample()
            return action.numpy(), (latent, action)

    def train_step(self, batch):
        loss, post, metrics = self.world_model.loss(batch)
        self.model_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.world_model.parameters()), max_norm=self.config.grad_clip)
        self.model_opt.step()
        start = State(*(x.detach().reshape(-1, *x.shape[2:]) for x in post))
        cont = (~batch["is_terminal"]).float().reshape(-1)
        behaviour = self.task_behavior.train_step(self.world_model, start, cont)
        return {"model_loss": loss.item(), **{k: float(v) for k, v in behaviour.items()}}


def test_reference_policy_acts_like_the_package_dreamer():
    """reference_policy is what Dreamer.policy computes (same weights and seed), so show_solution shows the truth."""
    config = Config.preset("debug", device="cpu")
    obs_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    package, mine = Dreamer(config, obs_space, act_space), Reference(config, obs_space, act_space)
    mine.load_state_dict(package.state_dict())
    frames = torch.randint(0, 256, (5, 2, 64, 64, 3), dtype=torch.uint8).numpy()
    firsts = [np.ones(2, bool), np.zeros(2, bool), np.array([True, False]), np.zeros(2, bool), np.zeros(2, bool)]
    states = [None, None]
    for t, (obs, first) in enumerate(zip(frames, firsts)):
        actions = []
        for k, agent in enumerate((package, mine)):
            torch.manual_seed(t)
            action, states[k] = agent.policy(obs, states[k], training=False, is_first=first)
            actions.append(action)
        np.testing.assert_allclose(actions[0], actions[1], atol=1e-6)


def test_policy_grader_accepts_correct_agents(capsys):
    checks.check_policy(Reference)
    checks.check_policy(Other)
    checks.check_policy(Dreamer)
    out = capsys.readouterr().out
    assert "your code (Reference)" in out and "your code (Other)" in out and "reference implementation" in out


class NoReset(Reference):
    def policy(self, obs, state=None, training=True, is_first=None):
        return checks.reference_policy(self, obs, state, training, None if state is not None else is_first)


class LateReset(Reference):
    """Updates the state with the frame first and zeroes the reset rows afterwards: the reset frame itself is
    still seen with the old episode's state, the reset takes effect one frame late."""

    def policy(self, obs, state=None, training=True, is_first=None):
        actions, (latent, action) = checks.reference_policy(self, obs, state, training,
                                                            None if state is not None else is_first)
        if state is not None:
            keep = torch.as_tensor(~np.asarray(is_first)).float()
            latent = latent.map(lambda x: x * keep.view(-1, *[1] * (x.dim() - 1)))
            action = action * keep[:, None]
        return actions, (latent, action)


class AlwaysSample(Reference):
    def policy(self, obs, state=None, training=True, is_first=None):
        return checks.reference_policy(self, obs, state, True, is_first)


class AlwaysMode(Reference):
    def policy(self, obs, state=None, training=True, is_first=None):
        return checks.reference_policy(self, obs, state, False, is_first)


class ForgetsAction(Reference):
    def policy(self, obs, state=None, training=True, is_first=None):
        actions, (latent, action) = checks.reference_policy(self, obs, state, training, is_first)
        return actions, (latent, torch.zeros_like(action))


class RawPixels(Reference):
    """Feeds uint8 pixels as floats to the encoder: not the preprocessing of training."""

    def policy(self, obs, state=None, training=True, is_first=None):
        wm = self.world_model
        embed = wm.embed
        wm.embed = lambda o: wm.encoder(o.float().movedim(-1, -3))
        try:
            return checks.reference_policy(self, obs, state, training, is_first)
        finally:
            wm.embed = embed


class ExtraLayer(Reference):
    def __init__(self, *args):
        super().__init__(*args)
        self.extra = nn.Linear(3, 3)


def test_train_step_grader_accepts_correct_agents(capsys):
    checks.check_train_step(Reference)
    checks.check_train_step(Other)
    assert "your code (Other)" in capsys.readouterr().out


def _train_step_with(agent, batch, detach: bool, invert_cont: bool):
    """The reference train_step, with one of two bugs switched on: start states still attached to the world
    model's graph, or the continuation flags inverted."""
    loss, post, metrics = agent.world_model.loss(batch)
    agent.model_opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(agent.world_model.parameters(), agent.config.grad_clip)
    agent.model_opt.step()
    start = post.map(lambda x: (x.detach() if detach else x).flatten(0, 1))
    terminal = batch["is_terminal"].flatten().float()
    agent.task_behavior.train_step(agent.world_model, start, terminal if invert_cont else 1.0 - terminal)
    return {"model_loss": loss.item()}


class NoDetach(Reference):
    def train_step(self, batch):
        return _train_step_with(self, batch, detach=False, invert_cont=False)


class InvertedCont(Reference):
    def train_step(self, batch):
        return _train_step_with(self, batch, detach=True, invert_cont=True)


class NoZeroGrad(Reference):
    def train_step(self, batch):
        self.model_opt.zero_grad = lambda *a, **k: None
        return checks.reference_train_step(self, batch)


class NoClip(Reference):
    def train_step(self, batch):
        clip = nn.utils.clip_grad_norm_
        nn.utils.clip_grad_norm_ = lambda params, max_norm: torch.zeros(())
        try:
            return checks.reference_train_step(self, batch)
        finally:
            nn.utils.clip_grad_norm_ = clip


class ModelOnly(Reference):
    def train_step(self, batch):
        loss, _, _ = self.world_model.loss(batch)
        self.model_opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.world_model.parameters(), self.config.grad_clip)
        self.model_opt.step()
        return {"model_loss": loss.item()}


class CopiesTarget(Reference):
    def train_step(self, batch):
        out = checks.reference_train_step(self, batch)
        self.task_behavior.target_critic.load_state_dict(self.task_behavior.critic.state_dict())
        return out


class NoMetrics(Reference):
    def train_step(self, batch):
        checks.reference_train_step(self, batch)


@pytest.mark.parametrize("check, cls, message", [
    (checks.check_policy, NoReset, "missing reset"),
    (checks.check_policy, LateReset, "one frame late"),
    (checks.check_policy, AlwaysSample, "training=False your actions are samples"),
    (checks.check_policy, AlwaysMode, "training=True your actions are the actor's mode"),
    (checks.check_policy, ForgetsAction, "previous action does not reach"),
    (checks.check_policy, RawPixels, "differ from the package's Dreamer"),
    (checks.check_policy, ExtraLayer, "cannot be loaded"),
    (checks.check_train_step, NoDetach, "gradient leak"),
    (checks.check_train_step, InvertedCont, "inverted continuation flags"),
    (checks.check_train_step, NoZeroGrad, "gradients zeroed"),
    (checks.check_train_step, NoClip, "world model changed differently from the reference \\(update 1\\)"),
    (checks.check_train_step, ModelOnly, "actor was not updated"),
    (checks.check_train_step, CopiesTarget, "target critic changed"),
    (checks.check_train_step, NoMetrics, "expected a dict"),
])
def test_agent_graders_name_the_mistake(check, cls, message):
    with pytest.raises(CheckFailed, match=message):
        check(cls)


@pytest.mark.parametrize("check, method", [(checks.check_policy, "policy"), (checks.check_train_step, "train_step")])
def test_agent_graders_say_not_implemented(check, method):
    with pytest.raises(CheckFailed, match="not implemented"):
        check(type("Stub", (Parts,), {method: stub}))


def test_learning_grader_compares_with_random():
    env_fn = lambda: make_env("dreamer_tutorial/PointReachDiscrete-v0", target=(0.0, 0.0))  # noqa: E731

    class GoToCentre(nn.Module):
        """Reads the red point's position from the frame and steps toward the centre: near-optimal."""
        discrete = True

        def policy(self, obs, state=None, training=True, is_first=None):
            actions = np.zeros((len(obs), 5), np.float32)
            for i, frame in enumerate(np.asarray(obs)):
                rows, cols = np.nonzero((frame[..., 0] > 200) & (frame[..., 1] < 100))
                dx, dy = cols.mean() - 31.5, 31.5 - rows.mean()
                move = 0 if max(abs(dx), abs(dy)) < 3 else (3 if dx > 0 else 4) if abs(dx) > abs(dy) else \
                    (2 if dy > 0 else 1)
                actions[i, move] = 1.0
            return actions, None

    class Stay(GoToCentre):
        def policy(self, obs, state=None, training=True, is_first=None):
            return np.eye(5, dtype=np.float32)[[0] * len(obs)], None

    checks.check_learning(GoToCentre(), env_fn, episodes=4)
    with pytest.raises(CheckFailed, match="does not beat the random policy"):
        checks.check_learning(Stay(), env_fn, episodes=4)
