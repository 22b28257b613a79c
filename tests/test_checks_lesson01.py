"""Graders of lesson 01: the CarRacing action map, area-average resizing and the discounted return.

Each grader accepts the reference and an independent correct implementation, rejects plausible mistakes with a
message naming what is wrong, and reports a stub as not implemented. The references agree with the package's
wrappers (`CarRacingActions`, `ResizeObservation`)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.envs import CarRacingActions, ResizeObservation


def stub(*args):
    raise NotImplementedError


def numpy_action_map(action):  # a learner working in numpy, wrapped for the torch grader
    a = np.clip(action.numpy(), -1, 1)
    return torch.from_numpy(np.stack([a[:, 0], (a[:, 1] + 1) / 2, (a[:, 2] + 1) / 2], 1))


def pool_resize(frame, factor):  # independent: average pooling on (1, C, H, W)
    x = frame.permute(2, 0, 1)[None].float()
    return F.avg_pool2d(x, factor)[0].permute(1, 2, 0)


CORRECT = {
    "check_carracing_action": [checks.reference_carracing_action, numpy_action_map],
    "check_resize_frame": [checks.reference_resize_frame, pool_resize],
    "check_discounted_return": [
        checks.reference_discounted_return,
        lambda r, g: torch.stack([sum(g ** k * r[:, t + k] for k in range(r.shape[1] - t))
                                  for t in range(r.shape[1])], 1)],
}

WRONG = [  # (grader, plausible mistake, words the message must contain)
    ("check_carracing_action", lambda a: torch.cat([a[:, :1], (a[:, 1:] + 1) / 2], 1), "values"),  # no clipping
    ("check_carracing_action", lambda a: a.clamp(-1, 1), "values"),  # gas and brake left unmapped (the seed's bug)
    ("check_carracing_action", lambda a: a.clamp(-1, 1).clamp(min=0), "values"),  # negative values cut, not mapped
    ("check_carracing_action", lambda a: (a.clamp(-1, 1) + 1) / 2, "values"),  # steer mapped too
    ("check_carracing_action", lambda a: ((a.clamp(-1, 1) + 1) / 2)[:, 1:], "shape"),  # steer dropped
    ("check_resize_frame", lambda f, k: f[::k, ::k].float(), "values"),  # nearest neighbour
    ("check_resize_frame", lambda f, k: f[k // 2::k, k // 2::k].float(), "values"),  # centre sample
    ("check_resize_frame", lambda f, k: pool_resize(f, k).floor(), "values"),  # rounds to integer grey levels
    ("check_resize_frame", lambda f, k: f.float().reshape(96 // k, 96 // k, k, k, 3).mean((2, 3)), "values"),
    ("check_resize_frame", lambda f, k: pool_resize(f, k).permute(2, 0, 1), "shape"),  # channels first
    ("check_resize_frame", lambda f, k: f.reshape(96 // k, k, 96 // k, k, 3).mean((1, 3)), "raised"),  # uint8 mean
    ("check_discounted_return", lambda r, g: torch.stack([sum(g ** (k + 1) * r[:, t + k] for k in range(r.shape[1] - t))
                                                          for t in range(r.shape[1])], 1), "values"),
    ("check_discounted_return", lambda r, g: r.flip(1).cumsum(1).flip(1), "values"),  # gamma ignored
]


@pytest.mark.parametrize("grader,fn", [(g, fn) for g, fns in CORRECT.items() for fn in fns])
def test_correct_implementations_pass(grader, fn, capsys):
    getattr(checks, grader)(fn)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("grader,fn,words", WRONG)
def test_plausible_mistakes_are_caught(grader, fn, words):
    with pytest.raises(CheckFailed, match=words) as info:
        getattr(checks, grader)(fn)
    assert "hint:" in str(info.value)


@pytest.mark.parametrize("grader", list(CORRECT))
def test_stub_is_reported_as_not_implemented(grader):
    with pytest.raises(CheckFailed, match="not implemented"):
        getattr(checks, grader)(stub)


def test_action_reference_matches_the_package_wrapper():
    wrapper = CarRacingActions(gym.make("CarRacing-v3"))
    actions = torch.randn(200, 3) * 1.5
    package = np.stack([wrapper.action(a) for a in actions.numpy()])
    assert np.allclose(checks.reference_carracing_action(actions).numpy(), package, atol=1e-6)
    assert np.all(package[:, 1:] >= 0) and np.all(package[:, 1:] <= 1)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_resize_reference_matches_the_package_wrapper_within_rounding(factor):
    frame = torch.randint(0, 256, (96, 96, 3), dtype=torch.uint8)
    wrapper = ResizeObservation(gym.make("CarRacing-v3"), 96 // factor)
    package = wrapper.observation(frame.numpy()).astype(np.float32)
    assert np.abs(package - checks.reference_resize_frame(frame, factor).numpy()).max() <= 1.0
    pil = np.asarray(Image.fromarray(frame.numpy()).resize((96 // factor,) * 2, Image.BOX))
    assert np.array_equal(pil, package.astype(np.uint8))
