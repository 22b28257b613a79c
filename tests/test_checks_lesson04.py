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


def world_model_loss(wm, batch, mistake=None):  # written independently: wm.observe, log-sigmoids, clamp
    c = wm.config
    post, prior = wm.observe(batch)
    feat = post.feat
    frames = batch["obs"].permute(0, 1, 4, 2, 3).float() / 255 - 0.5
    image = 0.5 * F.mse_loss(wm.decoder(feat), frames, reduction="none").sum((2, 3, 4)).mean()
    target = batch["reward"].tanh() if c.reward_transform == "tanh" and mistake != "no tanh" else batch["reward"]
    reward = 0.5 * ((wm.reward_head(feat)[..., 0] - target) ** 2).mean()
    logit, cont = wm.discount_head(feat)[..., 0], (~batch["is_terminal"]).float()
    discount = -(cont * F.logsigmoid(logit) + (1 - cont) * F.logsigmoid(-logit)).mean()

    def kl(p, q):
        return (p.softmax(-1) * (p.log_softmax(-1) - q.log_softmax(-1))).sum((-2, -1)).mean()

    prior_side = kl(post.logits.detach(), prior.logits).clamp(min=c.kl_free)
    post_side = kl(post.logits, prior.logits.detach()).clamp(min=c.kl_free)
    balance = {"swapped": 1 - c.kl_balance}.get(mistake, c.kl_balance)
    kl_loss = balance * prior_side + (1 - balance) * post_side
    if mistake == "no free nats":
        kl_loss = balance * kl(post.logits.detach(), prior.logits) + (1 - balance) * kl(post.logits,
                                                                                         prior.logits.detach())
    kl_scale = {"no kl scale": 1.0, "kl sign": -c.kl_scale}.get(mistake, c.kl_scale)
    discount_scale = 1.0 if mistake == "no discount scale" else c.discount_scale
    if mistake == "no reward":
        reward = 0.0
    return image + reward + discount_scale * discount + kl_scale * kl_loss


@pytest.mark.parametrize("mistake, message", [
    ("no reward", "gradient of the reward head is missing"),
    ("no tanh", "gradient of the reward head differs.*check the reward term"),
    ("no discount scale", "gradient of the discount head is 0.2 times"),
    ("swapped", "KL: .*the prior and posterior get the wrong share"),
    ("no kl scale", "KL: .*not scaled by kl_scale"),
    ("kl sign", "KL: the gradient of the prior .*has the opposite sign"),
    ("no free nats", "KL: the free nats are not respected"),
])
def test_world_model_loss_grader_names_the_wrong_term(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_world_model_loss(lambda wm, batch: world_model_loss(wm, batch, mistake))


def test_world_model_loss_grader():
    checks.check_world_model_loss(checks.reference_world_model_loss)
    checks.check_world_model_loss(world_model_loss)
    with pytest.raises(CheckFailed, match="opposite sign"):  # log-likelihood maximised... by minimising it
        checks.check_world_model_loss(lambda wm, batch: -world_model_loss(wm, batch))
    with pytest.raises(CheckFailed, match="encoder receives no gradient"):  # embeddings detached
        checks.check_world_model_loss(lambda wm, batch: world_model_loss(_DetachedEncoder(wm), batch))
    with pytest.raises(CheckFailed, match="scalar"):  # the package's (loss, post, metrics)
        checks.check_world_model_loss(lambda wm, batch: wm.loss(batch))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_world_model_loss(stub)


class _DetachedEncoder:
    """A world model whose `observe` cuts the gradient between the encoder and the RSSM."""

    def __init__(self, wm):
        self.wm = wm

    def __getattr__(self, name):
        return getattr(self.wm, name)

    def observe(self, batch):
        return self.wm.rssm.observe(self.wm.embed(batch["obs"]).detach(), batch["action"], batch["is_first"])
