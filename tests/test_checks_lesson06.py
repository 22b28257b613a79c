"""Lesson 06 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import pytest
import torch

from dreamer_tutorial import Config, checks
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.intrinsic import Curiosity, Plan2Explore
from dreamer_tutorial.rssm import State


def stub(*args, **kwargs):
    raise NotImplementedError


def test_curiosity_reward_grader():
    checks.check_curiosity_reward(checks.reference_curiosity_reward)
    checks.check_curiosity_reward(lambda pred, target: torch.nn.functional.mse_loss(pred, target, reduction="none")
                                  .mean(-1))
    # The package's Curiosity computes the same per-sample error (with its own predictor in front).
    module = Curiosity(Config.preset("debug", intrinsic="curiosity"), 4, 2, 64)
    feat, action, target = torch.randn(32, 4), torch.randn(32, 2), torch.rand(32, 64)
    with torch.no_grad():
        pred = module.predictor(torch.cat([feat, action], -1))
    torch.testing.assert_close(checks.reference_curiosity_reward(pred, target), module.reward(feat, action, target))
    with pytest.raises(CheckFailed, match="shape"):  # the seed's (batch, 1)
        checks.check_curiosity_reward(lambda pred, target: ((pred - target) ** 2).mean(-1, keepdim=True))
    with pytest.raises(CheckFailed, match="shape"):  # one scalar for the whole batch
        checks.check_curiosity_reward(lambda pred, target: ((pred - target) ** 2).mean())
    with pytest.raises(CheckFailed, match="summed over the dimensions"):
        checks.check_curiosity_reward(lambda pred, target: ((pred - target) ** 2).sum(-1))
    with pytest.raises(CheckFailed, match="opposite sign"):  # a penalty for novelty instead of a bonus
        checks.check_curiosity_reward(lambda pred, target: -((pred - target) ** 2).mean(-1))
    with pytest.raises(CheckFailed, match="values"):  # absolute error
        checks.check_curiosity_reward(lambda pred, target: (pred - target).abs().mean(-1))
    with pytest.raises(CheckFailed, match="no gradient"):  # computed outside the tape: the actor could not use it
        checks.check_curiosity_reward(lambda pred, target: ((pred - target) ** 2).mean(-1).detach())
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_curiosity_reward(stub)


def test_disagreement_grader():
    checks.check_disagreement(checks.reference_disagreement)
    checks.check_disagreement(lambda p: ((p - p.mean(0)) ** 2).mean(0).sqrt().mean(-1))  # std written out
    checks.check_disagreement(lambda p: torch.stack([q.std(0, unbiased=False) for q in p.unbind(1)]).mean(-1))
    # The package's Plan2Explore rewards the same disagreement (with disag_log off, the default).
    module = Plan2Explore(Config.preset("debug", intrinsic="plan2explore"), 4, 2, 64)
    feat, action = torch.randn(32, 4), torch.randn(32, 2)
    with torch.no_grad():
        torch.testing.assert_close(checks.reference_disagreement(module.predict(feat, action)),
                                   module.reward(feat, action))
    with pytest.raises(CheckFailed, match="variance across the members") as failure:  # the paper's variance
        checks.check_disagreement(lambda p: p.var(0, unbiased=False).mean(-1))
    assert "std" not in str(failure.value) and "sqrt" not in str(failure.value) and "root" not in str(failure.value)
    with pytest.raises(CheckFailed, match="divides by K - 1"):  # unbiased (K - 1) standard deviation
        checks.check_disagreement(lambda p: p.std(0).mean(-1))
    with pytest.raises(CheckFailed, match="average over the D dimensions before"):  # the std of the member averages
        checks.check_disagreement(lambda p: p.mean(-1).std(0, unbiased=False))
    with pytest.raises(CheckFailed, match="values"):  # the spread's log, the authors' disag_log (not asked here)
        checks.check_disagreement(lambda p: p.std(0, unbiased=False).mean(-1).log())
    with pytest.raises(CheckFailed, match="shape"):  # spread over the wrong axis (the samples)
        checks.check_disagreement(lambda p: p.std(1, unbiased=False).mean(-1))
    with pytest.raises(CheckFailed, match="no gradient"):  # computed outside the tape, as the package once did
        checks.check_disagreement(lambda p: p.detach().std(0, unbiased=False).mean(-1))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_disagreement(stub)


def independent_pairs(feat, action, stoch, is_first):  # an explicit loop over time, written apart from the package
    inputs, targets, mask = [], [], []
    for t in range(feat.shape[1] - 1):
        inputs.append(torch.cat([feat[:, t], action[:, t + 1]], -1))
        targets.append(stoch[:, t + 1].reshape(stoch.shape[0], -1))
        mask.append(torch.where(is_first[:, t + 1], 0.0, 1.0))
    return torch.stack(inputs, 1), torch.stack(targets, 1), torch.stack(mask, 1)


def test_transition_pairs_grader():
    checks.check_transition_pairs(checks.reference_transition_pairs)
    checks.check_transition_pairs(independent_pairs)
    checks.check_transition_pairs(lambda f, a, s, i: (torch.cat([f, a.roll(-1, 1)], -1)[:, :-1],  # bool mask
                                                      s.flatten(2)[:, 1:], ~i[:, 1:]))

    def shifted_action(feat, action, stoch, is_first):  # a_t instead of the action stored in row t + 1
        inputs, target, mask = independent_pairs(feat, action, stoch, is_first)
        return torch.cat([feat[:, :-1], action[:, :-1]], -1), target, mask

    def mask_from_row_t(feat, action, stoch, is_first):
        inputs, target, _ = independent_pairs(feat, action, stoch, is_first)
        return inputs, target, (~is_first[:, :-1]).float()

    def no_flatten(feat, action, stoch, is_first):
        inputs, _, mask = independent_pairs(feat, action, stoch, is_first)
        return inputs, stoch[:, 1:], mask

    def replace(k, value):  # independent_pairs with output k replaced by value(feat, action, stoch, is_first)
        def pairs(*args):
            out = list(independent_pairs(*args))
            out[k] = value(*args)
            return tuple(out)
        return pairs

    with pytest.raises(CheckFailed, match="action in the inputs is off by one"):
        checks.check_transition_pairs(shifted_action)
    with pytest.raises(CheckFailed, match="features in the inputs are off by one"):
        checks.check_transition_pairs(replace(0, lambda f, a, s, i: torch.cat([f[:, 1:], a[:, 1:]], -1)))
    with pytest.raises(CheckFailed, match="wrong order"):
        checks.check_transition_pairs(replace(0, lambda f, a, s, i: torch.cat([a[:, 1:], f[:, :-1]], -1)))
    with pytest.raises(CheckFailed, match="targets are off by one"):
        checks.check_transition_pairs(replace(1, lambda f, a, s, i: s[:, :-1].flatten(-2)))
    with pytest.raises(CheckFailed, match="mask is off by one"):
        checks.check_transition_pairs(mask_from_row_t)
    with pytest.raises(CheckFailed, match="keeps every pair"):  # the missing reset at episode starts
        checks.check_transition_pairs(replace(2, lambda f, a, s, i: torch.ones(i[:, 1:].shape)))
    with pytest.raises(CheckFailed, match="mask is inverted"):
        checks.check_transition_pairs(replace(2, lambda f, a, s, i: i[:, 1:].float()))
    with pytest.raises(CheckFailed, match="output 1 has shape"):
        checks.check_transition_pairs(no_flatten)
    with pytest.raises(CheckFailed, match="output 0 values"):  # a mistake the grader has no name for
        checks.check_transition_pairs(replace(0, lambda f, a, s, i: torch.cat([f[:, :-1], 2 * a[:, 1:]], -1)))
    with pytest.raises(CheckFailed, match="expected 3 output"):
        checks.check_transition_pairs(lambda *args: independent_pairs(*args)[:2])
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_transition_pairs(stub)


def test_transition_pairs_match_the_package_training_loss():
    """The reference builds exactly the pairs that _LatentPredictor.train_step fits."""
    torch.manual_seed(0)
    config = Config.preset("debug", intrinsic="curiosity")
    b, t, deter, s, c, a = 3, 6, 5, 2, 4, 2
    module = Curiosity(config, deter + s * c, a, s * c)
    stoch = torch.nn.functional.one_hot(torch.randint(0, c, (b, t, s)), c).float()
    post = State(torch.randn(b, t, deter), stoch, stoch)
    action, is_first = torch.randn(b, t, a), torch.rand(b, t) < 0.3
    inputs, target, mask = checks.reference_transition_pairs(post.feat, action, post.stoch, is_first)
    with torch.no_grad():
        error = ((module.predictor(inputs) - target) ** 2).mean(-1)
        expected = (error * mask).sum() / mask.sum().clamp(min=1.0)
    loss = module.train_step(post, action, is_first)["intrinsic_model_loss"]
    torch.testing.assert_close(loss, expected)


def test_graders_say_whose_code_they_graded_and_solutions_print(capsys):
    checks.check_disagreement(checks.reference_disagreement)
    checks.check_disagreement(lambda p: ((p - p.mean(0)) ** 2).mean(0).sqrt().mean(-1))
    reference, learner = capsys.readouterr().out.splitlines()
    assert "passed" in reference and "the reference implementation" in reference
    assert "passed" in learner and "your code" in learner
    for name in ("curiosity_reward", "transition_pairs", "disagreement"):
        checks.show_solution(name)
        assert f"def reference_{name}(" in capsys.readouterr().out
