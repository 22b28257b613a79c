"""Lesson 03 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import re

import pytest
import torch
import torch.nn.functional as F

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.rssm import State, sample_one_hot
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


# --- the RSSM steps -----------------------------------------------------------------------------------------------

def my_img_step(rssm, prev, action, *, logits_from=None, sampler=None, detach_deter=False, flat_logits=False):
    """Written independently of the package (reshape, no unflatten); the keywords inject typical mistakes."""
    x = rssm.img_in(torch.cat([prev.stoch.reshape(len(action), -1), action], 1))
    deter = rssm.cell(x, prev.deter.detach() if detach_deter else prev.deter)
    logits = rssm.img_out(deter if logits_from is None else logits_from)
    if not flat_logits:
        logits = logits.reshape(len(action), rssm.stoch_dim, rssm.classes)
    return State(deter, (sampler or st_sample)(logits), logits)


def st_sample(logits):  # the package's one-hot draw, with an independently written straight-through
    probs = F.softmax(logits, -1)
    return (sample_one_hot(probs.detach()) - probs).detach() + probs


def multinomial_sample(logits):  # correct in distribution, but not the package's draw: not comparable
    probs = F.softmax(logits, -1)
    index = torch.multinomial(probs.detach().flatten(0, -2), 1).view(probs.shape[:-1])
    return F.one_hot(index, probs.shape[-1]).float() + probs - probs.detach()


def my_obs_step(rssm, prev, action, embed, is_first, *, reset_state=True, reset_action=True, mask=None,
                post_from_prev=False, img_step=my_img_step):
    first = (is_first if mask is None else mask).view(-1, 1)
    zero = torch.zeros(())
    if reset_state:
        prev = State(torch.where(first, zero, prev.deter), torch.where(first[..., None], zero, prev.stoch),
                     torch.where(first[..., None], zero, prev.logits))
    if reset_action:
        action = torch.where(first, zero, action)
    prior = img_step(rssm, prev, action)
    h = prev.deter if post_from_prev else prior.deter
    logits = rssm.obs_out(torch.cat([h, embed], -1)).reshape(prior.logits.shape)
    return State(prior.deter, st_sample(logits), logits), prior


def in_place_obs_step(rssm, prev, action, embed, is_first):
    prev.deter[is_first] = 0
    return my_obs_step(rssm, prev, action, embed, is_first)


def test_img_step_grader(capsys):
    checks.check_img_step(checks.reference_img_step)
    checks.check_img_step(my_img_step)
    checks.check_img_step(lambda rssm, prev, action: rssm.img_step(prev, action))
    assert capsys.readouterr().out.splitlines()[:2] == [
        "✅ img_step passed - graded: the reference implementation "
        "(dreamer_tutorial.checks.lesson03.reference_img_step)",
        "✅ img_step passed - graded: your code (my_img_step)"]
    mistakes = [
        (dict(logits_from="prev"), "off-by-one step"),
        (dict(sampler=lambda logits: sample_one_hot(logits.softmax(-1))), "straight-through estimator is missing"),
        (dict(sampler=multinomial_sample), "not the one the package draws with the same seed"),
        (dict(sampler=lambda logits: logits.softmax(-1)), "not one-hot in the forward pass"),
        (dict(flat_logits=True), "prior.logits has shape (6, 30), expected (6, 6, 5)"),
        (dict(detach_deter=True), "no gradient reaches the previous deter"),
    ]
    for kwargs, message in mistakes:
        def step(rssm, prev, action, kwargs=kwargs):
            if kwargs.get("logits_from") == "prev":
                kwargs = {**kwargs, "logits_from": prev.deter}
            return my_img_step(rssm, prev, action, **kwargs)
        with pytest.raises(CheckFailed, match=re.escape(message)):
            checks.check_img_step(step)
    with pytest.raises(CheckFailed, match="values are wrong"):  # [a, z] instead of [z, a]: same input size
        checks.check_img_step(lambda rssm, prev, action: rssm.img_step(prev._replace(stoch=prev.stoch.flip(1)),
                                                                       action))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_img_step(stub)


def test_obs_step_grader(capsys):
    checks.check_obs_step(checks.reference_obs_step)
    checks.check_obs_step(my_obs_step)
    checks.check_obs_step(lambda rssm, prev, action, embed, is_first: rssm.obs_step(prev, action, embed, is_first))
    assert capsys.readouterr().out.splitlines()[1] == "✅ obs_step passed - graded: your code (my_obs_step)"
    all_rows = lambda is_first: torch.ones_like(is_first)  # noqa: E731
    mistakes = [
        (dict(reset_state=False, reset_action=False), "a missing reset"),
        (dict(mask=all_rows), "Every row is reset, not only the rows where is_first is true"),
        (dict(mask=lambda is_first: ~is_first), "the mask is inverted"),
        (dict(reset_action=False), "the action is not"),
        (dict(reset_state=False), "The action is reset but the previous state is not"),
        (dict(post_from_prev=True), "off-by-one step"),
        (dict(img_step=lambda rssm, prev, action: my_img_step(rssm, prev, action, sampler=multinomial_sample)),
         "not the one the package draws"),
    ]
    for kwargs, message in mistakes:
        def step(rssm, prev, action, embed, is_first, kwargs=kwargs):
            if "mask" in kwargs:
                kwargs = {**kwargs, "mask": kwargs["mask"](is_first)}
            return my_obs_step(rssm, prev, action, embed, is_first, **kwargs)
        with pytest.raises(CheckFailed, match=re.escape(message)):
            checks.check_obs_step(step)
    with pytest.raises(CheckFailed, match="in-place operation"):  # zeroing prev in place: a leaf of the graph
        checks.check_obs_step(in_place_obs_step)
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_obs_step(stub)
