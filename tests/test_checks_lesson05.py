"""Lesson 05 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import pytest
import torch

from dreamer_tutorial import checks, lambda_return
from dreamer_tutorial.checks import CheckFailed


def stub(*args, **kwargs):
    raise NotImplementedError


def recursion(reward, value, discount, bootstrap, lambda_, next_value_shift=1, start=None):
    values = torch.cat([value, bootstrap[None]])
    R, out = bootstrap if start is None else start, []
    for t in reversed(range(len(reward))):
        R = reward[t] + discount[t] * ((1 - lambda_) * values[t + next_value_shift] + lambda_ * R)
        out.insert(0, R)
    return torch.stack(out)


def weights(start_cont, discount):  # written independently: a running product
    w, out = start_cont, []
    for t in range(len(discount)):
        out.append(w)
        w = w * discount[t]
    return torch.stack(out)


def reinforce(log_prob, returns, baseline, entropy, weight, scale):
    advantage = (returns - baseline).detach()
    return -(weight * log_prob * advantage).mean() - scale * (weight * entropy).mean()


def test_lambda_return_grader():
    checks.check_lambda_return(lambda_return)
    checks.check_lambda_return(recursion)
    with pytest.raises(CheckFailed, match="values"):  # v_t instead of v_{t+1}
        checks.check_lambda_return(lambda r, v, d, b, lam: recursion(r, v, d, b, lam, next_value_shift=0))
    with pytest.raises(CheckFailed, match="values"):  # R_H = 0 instead of the bootstrap
        checks.check_lambda_return(lambda r, v, d, b, lam: recursion(r, v, d, b, lam, start=torch.zeros_like(b)))
    with pytest.raises(CheckFailed, match="values"):  # lambda ignored (always 0.95)
        checks.check_lambda_return(lambda r, v, d, b, lam: recursion(r, v, d, b, 0.95))
    with pytest.raises(CheckFailed, match="no gradient"):  # values detached
        checks.check_lambda_return(lambda r, v, d, b, lam: recursion(r, v.detach(), d, b, lam))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_lambda_return(stub)


def test_discount_weights_grader():
    checks.check_discount_weights(checks.reference_discount_weights)
    checks.check_discount_weights(weights)
    with pytest.raises(CheckFailed, match="values"):  # off by one: w_0 = d_1
        checks.check_discount_weights(lambda c, d: c * torch.cumprod(d, 0))
    with pytest.raises(CheckFailed, match="values"):  # the start state's continuation flag ignored
        checks.check_discount_weights(lambda c, d: weights(torch.ones_like(c), d))
    with pytest.raises(CheckFailed, match="shape"):  # H + 1 weights
        checks.check_discount_weights(lambda c, d: torch.cumprod(torch.cat([c[None], d], 0), 0))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_discount_weights(stub)


def test_reinforce_loss_grader():
    checks.check_reinforce_loss(checks.reference_reinforce_loss)
    checks.check_reinforce_loss(reinforce)
    with pytest.raises(CheckFailed, match="gradient"):  # no stop-gradient on the advantage
        checks.check_reinforce_loss(lambda lp, R, v, H, w, s: -(w * (lp * (R - v) + s * H)).mean())
    with pytest.raises(CheckFailed, match="values"):  # entropy penalised instead of rewarded
        checks.check_reinforce_loss(lambda lp, R, v, H, w, s: reinforce(lp, R, v, -H, w, s))
    with pytest.raises(CheckFailed, match="values"):  # weights forgotten
        checks.check_reinforce_loss(lambda lp, R, v, H, w, s: reinforce(lp, R, v, H, torch.ones_like(w), s))
    with pytest.raises(CheckFailed, match="values"):  # no baseline
        checks.check_reinforce_loss(lambda lp, R, v, H, w, s: reinforce(lp, R, torch.zeros_like(v), H, w, s))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_reinforce_loss(stub)
