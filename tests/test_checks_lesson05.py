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


def actor_critic_losses(ac, wm, start, start_cont, mistake=None):
    """Written independently: an explicit imagination loop, the lambda-recursion above, a running weight, and the
    world model frozen by hand. `mistake` injects one typical error."""
    c, params = ac.config, [p for p in wm.parameters() if p.requires_grad]
    if mistake != "world model not frozen":
        for p in params:
            p.requires_grad_(False)
    try:
        state, feats, log_probs, entropies = start, [start.feat], [], []
        for _ in range(c.horizon):  # sample the action, then the next latent: the order ac.imagine draws noise in
            dist = ac.actor(state.feat.detach())
            action = dist.rsample()
            log_probs.append(dist.log_prob(action.detach()))
            entropies.append(dist.entropy())
            state = wm.rssm.img_step(state, action)
            feats.append(state.feat)
        feat = torch.stack(feats)
        reward, discount = wm.reward(feat[1:]), wm.discount(feat[1:])
        critic = ac.critic if mistake == "online critic in the returns" else ac.target_critic
        value = critic(feat).squeeze(-1)
        returns = recursion(reward, value[:-1], discount, value[-1], c.lambda_)
        weight = weights(start_cont, discount)
        if mistake != "weights not detached":
            weight = weight.detach()
        log_prob, entropy = torch.stack(log_probs), torch.stack(entropies)
        if ac.discrete and mistake != "dynamics backprop for discrete actions":
            objective = log_prob * (returns - value[:-1]).detach()
        else:
            objective = returns
        actor = -(weight * (objective + c.actor_entropy * entropy)).mean()
        if mistake == "actor sign":
            actor = -actor
    finally:
        for p in params:
            p.requires_grad_(True)
    target = returns if mistake == "returns not detached" else returns.detach()
    online = feat[1:] if mistake == "off by one" else feat[:-1]
    critic_loss = (weight * (ac.value(online.detach()) - target) ** 2).mean() / 2
    return actor, critic_loss


@pytest.mark.parametrize("mistake, message", [
    ("returns not detached", "critic loss sends a gradient into the actor \\("),
    ("online critic in the returns", "actor gradient reaches the critic"),
    ("weights not detached", "are the weights w_t detached"),
    ("off by one", "off-by-one between returns and values.*v\\(s_t\\)"),
    ("actor sign", "actor loss has the opposite sign"),
    ("world model not frozen", "gradient leak.*into the world model"),
    ("dynamics backprop for discrete actions", "discrete actions.*actor loss off by"),
])
def test_actor_critic_update_grader_names_the_mistake(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_actor_critic_update(lambda *args: actor_critic_losses(*args, mistake=mistake))


def test_actor_critic_update_grader():
    checks.check_actor_critic_update(checks.reference_actor_critic_update)
    checks.check_actor_critic_update(actor_critic_losses)
    with pytest.raises(CheckFailed, match="two scalar tensors"):  # the sum of the two losses
        checks.check_actor_critic_update(lambda *args: sum(actor_critic_losses(*args)))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_actor_critic_update(stub)
