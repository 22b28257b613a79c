"""Lesson 08 graders: they accept correct answers and reject plausible mistakes with a useful message."""

import pytest
import torch

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed


def test_num_updates_grader():
    checks.check_num_updates(lambda steps, prefill, every: max(0, (steps - prefill) // every))
    with pytest.raises(CheckFailed, match="wrong result"):
        checks.check_num_updates(lambda steps, prefill, every: steps // every)  # forgets the prefill
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_num_updates(lambda *a: (_ for _ in ()).throw(NotImplementedError))


def test_replay_bytes_grader():
    checks.check_replay_bytes(lambda cap, size, a: cap * (3 * size * size + 4 * a + 6))
    with pytest.raises(CheckFailed, match="wrong result"):
        checks.check_replay_bytes(lambda cap, size, a: cap * (4 * 3 * size * size + 4 * a + 6))  # float frames


def test_replay_bytes_reference_matches_the_real_buffer():
    from dreamer_tutorial.replay import SequenceReplay

    assert checks.reference_replay_bytes(1, 64, 3) == SequenceReplay(10, (64, 64, 3), 3).bytes_per_step


def test_episode_returns_grader():
    def loop(reward, is_first):
        out, total = [], None
        for r, first in zip(reward.tolist(), is_first.tolist()):
            if first:
                if total is not None:
                    out.append(total)
                total = 0.0
            total += r
        return torch.tensor(out)

    checks.check_episode_returns(loop)
    with pytest.raises(CheckFailed, match="shape"):  # also counts the unfinished last episode
        checks.check_episode_returns(lambda r, f: torch.cat([loop(r, f), r[torch.nonzero(f).max():].sum()[None]]))


def stub(*args):
    raise NotImplementedError


def test_episode_returns_grader_rejects_an_episode_cut_short():
    def late(reward, is_first):  # one row late: the next reset row's reward is 0, so this is still right
        starts = torch.nonzero(is_first).flatten().tolist()
        return torch.stack([reward[a + 1:b + 1].sum() for a, b in zip(starts, starts[1:])])

    def short(reward, is_first):  # stops one row early: the last reward of every episode is lost
        starts = torch.nonzero(is_first).flatten().tolist()
        return torch.stack([reward[a:b - 1].sum() for a, b in zip(starts, starts[1:])])

    checks.check_episode_returns(late)
    with pytest.raises(CheckFailed, match="values are wrong"):
        checks.check_episode_returns(short)


@pytest.mark.parametrize("grader", [checks.check_num_updates, checks.check_replay_bytes, checks.check_episode_returns])
def test_lesson08_graders_say_not_implemented(grader):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        grader(stub)
