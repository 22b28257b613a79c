"""Graders of lessons 01-07: each accepts an independent correct implementation and rejects a plausible mistake
with a message naming what is wrong (values, shape, gradient), and reports stubs as not implemented."""

import pytest
import torch
import torch.nn.functional as F

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed


def stub(*args):
    raise NotImplementedError


def loop_lambda_return(reward, value, discount, bootstrap, lambda_):
    nxt, out = bootstrap, []
    values = torch.cat([value, bootstrap[None]])
    for t in reversed(range(len(reward))):
        nxt = reward[t] + discount[t] * ((1 - lambda_) * values[t + 1] + lambda_ * nxt)
        out.append(nxt)
    return torch.stack(out[::-1])


def kl(p_logits, q_logits):
    p = F.softmax(p_logits, -1)
    return (p * (F.log_softmax(p_logits, -1) - F.log_softmax(q_logits, -1))).sum((-2, -1)).mean()


def my_kl_balance(post, prior, balance, free):
    lhs = torch.clamp(kl(post.detach(), prior), min=free)
    rhs = torch.clamp(kl(post, prior.detach()), min=free)
    return balance * lhs + (1 - balance) * rhs


CASES = {  # grader: (a correct implementation written independently, a plausible mistake, expected message)
    "check_carracing_action": (
        lambda a: torch.cat([a[:, :1].clamp(-1, 1), (a[:, 1:].clamp(-1, 1) + 1) * 0.5], 1),
        lambda a: torch.cat([a[:, :1], (a[:, 1:] + 1) * 0.5], 1), "values"),  # forgets to clip
    "check_discounted_return": (
        lambda r, g: torch.stack([sum(g ** k * r[:, t + k] for k in range(r.shape[1] - t))
                                  for t in range(r.shape[1])], 1),
        lambda r, g: torch.stack([sum(g ** (k + 1) * r[:, t + k] for k in range(r.shape[1] - t))
                                  for t in range(r.shape[1])], 1), "values"),
    "check_preprocess": (
        lambda o: (o.float() / 255 - 0.5).movedim(-1, -3),
        lambda o: (o.float() / 255 - 0.5).transpose(-1, -3), "values"),  # swaps H and W too
    "check_image_nll": (
        lambda m, x: ((x - m) ** 2).sum((1, 2, 3)) / 2,
        lambda m, x: ((x - m) ** 2).mean((1, 2, 3)) / 2, "values"),
    "check_straight_through": (
        lambda logits, sample: sample + (F.softmax(logits, -1) - F.softmax(logits, -1).detach()),
        lambda logits, sample: sample + (logits - logits.detach()), "gradient"),  # gradient of logits, not probs
    "check_kl_balance": (
        my_kl_balance,
        lambda post, prior, b, f: my_kl_balance(post, prior, 1 - b, f), "gradient"),  # swapped balance
    "check_discount_nll": (
        lambda logits, term: -(torch.logical_not(term) * F.logsigmoid(logits)
                               + term * F.logsigmoid(-logits)).mean(),
        lambda logits, term: F.binary_cross_entropy_with_logits(logits, term.float()), "values"),
    "check_replay_rows": (
        lambda a, r, term: (F.pad(a, (0, 0, 1, 0)), F.pad(r, (1, 0)), F.pad(torch.ones(1), (0, len(r))).bool(),
                            F.pad(torch.tensor([float(term)]), (len(r), 0)).bool()),
        lambda a, r, term: (F.pad(a, (0, 0, 0, 1)), F.pad(r, (0, 1)), F.pad(torch.ones(1), (0, len(r))).bool(),
                            F.pad(torch.tensor([float(term)]), (len(r), 0)).bool()), "values"),  # shifted wrongly
    "check_lambda_return": (
        loop_lambda_return,
        lambda r, v, d, b, lam: loop_lambda_return(r, v, d, b, 1 - lam), "values"),
    "check_discount_weights": (
        lambda cont, d: torch.stack([cont * torch.prod(d[:t], 0) for t in range(len(d))]),
        lambda cont, d: cont * torch.cumprod(d, 0), "values"),  # off by one step
    "check_disagreement": (
        lambda p: ((p - p.mean(0)) ** 2).mean(0).sqrt().mean(-1),
        lambda p: p.std(0).mean(-1), "divides by K - 1"),  # unbiased standard deviation
    "check_curiosity_reward": (
        lambda pred, target: (pred - target).pow(2).mean(1),
        lambda pred, target: (pred - target).pow(2).mean().expand(len(pred)).clone(), "values"),  # the seed's bug
    "check_greedy_action": (
        lambda logits: F.one_hot(logits.argmax(-1), logits.shape[-1]).float(),
        lambda logits: logits.argmax(-1), "shape"),
    "check_reset_state": (
        lambda h, z, first: (torch.where(first[:, None], 0.0, h), torch.where(first[:, None, None], 0.0, z)),
        lambda h, z, first: (torch.where(first[:, None], 0.0, h), z), "values"),  # forgets the stochastic part
}


@pytest.mark.parametrize("grader", sorted(CASES))
def test_grader(grader):
    correct, wrong, message = CASES[grader]
    check = getattr(checks, grader)
    check(correct)
    with pytest.raises(CheckFailed, match=message):
        check(wrong)
    with pytest.raises(CheckFailed, match="not implemented"):
        check(stub)


def test_check_function_catches_a_missing_stop_gradient():
    def make_inputs(g):
        return torch.randn(5, generator=g), torch.randn(5, generator=g)

    reference = lambda x, y: x * y.detach()  # noqa: E731
    checks.check_function(lambda x, y: y.detach() * x, reference, make_inputs, name="sg", grad_inputs=(0, 1))
    with pytest.raises(CheckFailed, match="stop-gradient"):
        checks.check_function(lambda x, y: x * y, reference, make_inputs, name="sg", grad_inputs=(0, 1))
