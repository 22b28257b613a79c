"""Lesson 03 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import pytest
import torch
import torch.nn.functional as F

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.world_model import categorical_kl, kl_balance


def stub(*args, **kwargs):
    raise NotImplementedError


def kl(p_logits, q_logits):  # written independently of the package: probabilities, not log_softmax
    p, q = F.softmax(p_logits, -1), F.softmax(q_logits, -1)
    return (p * (p.log() - q.log())).sum((-2, -1))


def balanced(post, prior, balance, free):
    lhs = torch.clamp(kl(post.detach(), prior).mean(), min=free)
    rhs = torch.clamp(kl(post, prior.detach()).mean(), min=free)
    return balance * lhs + (1 - balance) * rhs


def test_straight_through_grader():
    checks.check_straight_through(checks.reference_straight_through)
    checks.check_straight_through(lambda logits, sample: (sample - F.softmax(logits, -1)).detach()
                                  + F.softmax(logits, -1))
    with pytest.raises(CheckFailed, match="gradient"):  # gradient of the logits instead of the probabilities
        checks.check_straight_through(lambda logits, sample: sample + (logits - logits.detach()))
    with pytest.raises(CheckFailed, match="no gradient"):  # the plain sample: nothing reaches the logits
        checks.check_straight_through(lambda logits, sample: sample)
    with pytest.raises(CheckFailed, match="values"):  # relaxed sample: the forward value is not the one-hot
        checks.check_straight_through(lambda logits, sample: F.softmax(logits, -1))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_straight_through(stub)


def test_categorical_kl_grader():
    checks.check_categorical_kl(categorical_kl)
    checks.check_categorical_kl(kl)
    checks.check_categorical_kl(lambda p, q: torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=p), torch.distributions.Categorical(logits=q)).sum(-1))
    with pytest.raises(CheckFailed, match="values"):  # arguments swapped: KL(Q || P)
        checks.check_categorical_kl(lambda p, q: kl(q, p))
    with pytest.raises(CheckFailed, match="values"):  # logits used as log-probabilities
        checks.check_categorical_kl(lambda p, q: (F.softmax(p, -1) * (p - q)).sum((-2, -1)))
    with pytest.raises(CheckFailed, match="shape"):  # summed over the classes only
        checks.check_categorical_kl(lambda p, q: (F.softmax(p, -1) * (F.log_softmax(p, -1)
                                                                      - F.log_softmax(q, -1))).sum(-1))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_categorical_kl(stub)


def test_kl_balance_grader():
    checks.check_kl_balance(lambda post, prior, b, f: kl_balance(post, prior, b, f)[0])
    checks.check_kl_balance(balanced)
    with pytest.raises(CheckFailed, match="gradient"):  # balance on the wrong side
        checks.check_kl_balance(lambda post, prior, b, f: balanced(post, prior, 1 - b, f))
    with pytest.raises(CheckFailed, match="gradient"):  # no stop-gradients: the plain KL
        checks.check_kl_balance(lambda post, prior, b, f: torch.clamp(kl(post, prior).mean(), min=f))
    with pytest.raises(CheckFailed, match="values"):  # free nats forgotten
        checks.check_kl_balance(lambda post, prior, b, f: balanced(post, prior, b, 0.0))
    with pytest.raises(CheckFailed, match="values"):  # free nats per sample instead of after averaging
        checks.check_kl_balance(lambda post, prior, b, f: kl_balance(post, prior, b, f, free_avg=False)[0])
    with pytest.raises(CheckFailed, match="values"):  # KL of the prior from the posterior: KL(p || q)
        checks.check_kl_balance(lambda post, prior, b, f: balanced(prior, post, 1 - b, f))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_kl_balance(stub)
