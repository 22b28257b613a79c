"""Lesson 04 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import pytest
import torch
import torch.nn.functional as F

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed


def stub(*args, **kwargs):
    raise NotImplementedError


def discount_nll(logits, is_terminal):  # written independently: log-sigmoids, continuation = not terminal
    cont = (~is_terminal).float()
    return -(cont * F.logsigmoid(logits) + (1 - cont) * F.logsigmoid(-logits)).mean()


def replay_rows(actions, rewards, terminated):  # written independently: fill preallocated columns
    n = len(rewards) + 1
    action, reward = actions.new_zeros(n, actions.shape[1]), rewards.new_zeros(n)
    action[1:], reward[1:] = actions, rewards
    is_first = torch.arange(n) == 0
    is_terminal = (torch.arange(n) == n - 1) & terminated
    return action, reward, is_first, is_terminal


def test_discount_nll_grader():
    checks.check_discount_nll(checks.reference_discount_nll)
    checks.check_discount_nll(discount_nll)
    with pytest.raises(CheckFailed, match="values"):  # the terminal flag as target instead of the continuation
        checks.check_discount_nll(lambda logits, term: F.binary_cross_entropy_with_logits(logits, term.float()))
    with pytest.raises(CheckFailed, match="values"):  # summed instead of averaged
        checks.check_discount_nll(lambda logits, term: discount_nll(logits, term) * logits.numel())
    with pytest.raises(CheckFailed, match="shape"):  # not reduced
        checks.check_discount_nll(lambda logits, term: F.binary_cross_entropy_with_logits(
            logits, (~term).float(), reduction="none"))
    with pytest.raises(CheckFailed, match="no gradient"):  # detached logits
        checks.check_discount_nll(lambda logits, term: discount_nll(logits.detach(), term))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_discount_nll(stub)


def test_replay_rows_grader():
    checks.check_replay_rows(checks.reference_replay_rows)
    checks.check_replay_rows(replay_rows)
    with pytest.raises(CheckFailed, match="values"):  # actions shifted the wrong way: a_{t+1} stored with x_t
        checks.check_replay_rows(lambda a, r, term: (torch.cat([a, torch.zeros_like(a[:1])]),
                                                     *replay_rows(a, r, term)[1:]))
    with pytest.raises(CheckFailed, match="values"):  # every episode end treated as a termination
        checks.check_replay_rows(lambda a, r, term: replay_rows(a, r, True))
    with pytest.raises(CheckFailed, match="values"):  # terminations ignored
        checks.check_replay_rows(lambda a, r, term: replay_rows(a, r, False))
    with pytest.raises(CheckFailed, match="shape"):  # the reset frame forgotten: T rows instead of T + 1
        checks.check_replay_rows(lambda a, r, term: tuple(x[1:] for x in replay_rows(a, r, term)))
    with pytest.raises(CheckFailed, match="output"):  # is_first and is_terminal missing
        checks.check_replay_rows(lambda a, r, term: replay_rows(a, r, term)[:2])
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_replay_rows(stub)
