"""World model: KL balancing, straight-through samples, RSSM resets and shapes, loss terms, bad inputs."""

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from dreamer_tutorial import RSSM, Config, WorldModel, kl_balance
from dreamer_tutorial.networks import normal_nll, preprocess
from dreamer_tutorial.rssm import State, straight_through_sample


def independent_kl(post_logits, prior_logits):
    """KL(post || prior) with torch.distributions, summed over the stoch axis, averaged over the rest."""
    return kl_divergence(Categorical(logits=post_logits), Categorical(logits=prior_logits)).sum(-1).mean()


@pytest.mark.parametrize("balance", [0.8, 0.5, 0.3])
def test_kl_balance_value_and_gradient_split(balance):
    torch.manual_seed(0)
    post = torch.randn(4, 6, 5, 7, requires_grad=True)
    prior = torch.randn(4, 6, 5, 7, requires_grad=True)
    loss, kl = kl_balance(post, prior, balance=balance, free=0.0)
    expected = independent_kl(post, prior)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(kl, expected.detach())
    assert not kl.requires_grad

    g_post, g_prior = torch.autograd.grad(loss, [post, prior])
    ref_post, ref_prior = torch.autograd.grad(independent_kl(post, prior), [post, prior])
    # The prior receives `balance` of the gradient, the posterior `1 - balance`.
    torch.testing.assert_close(g_prior, balance * ref_prior)
    torch.testing.assert_close(g_post, (1 - balance) * ref_post)


def test_kl_balance_free_nats_clamp():
    torch.manual_seed(1)
    post = torch.randn(8, 4, 3, requires_grad=True)
    prior = (post.detach() + 0.01 * torch.randn(8, 4, 3)).requires_grad_(True)
    kl_value = independent_kl(post, prior).item()
    assert kl_value < 0.5
    loss, kl = kl_balance(post, prior, balance=0.8, free=1.0)
    assert loss.item() == pytest.approx(1.0)  # clamped to the free nats
    assert kl.item() == pytest.approx(kl_value, rel=1e-3)  # the reported KL is not clamped
    g_post, g_prior = torch.autograd.grad(loss, [post, prior], allow_unused=True)
    assert g_post.abs().max() == 0 and g_prior.abs().max() == 0  # no gradient below the free nats
    # Above the free nats the loss equals the KL again.
    loss_low, _ = kl_balance(post, prior, balance=0.8, free=kl_value / 2)
    assert loss_low.item() == pytest.approx(kl_value, rel=1e-3)


def test_kl_balance_free_per_element_vs_average():
    post = torch.zeros(2, 1, 2)
    prior = torch.tensor([[[0.0, 0.0]], [[3.0, -3.0]]])  # element 0 has KL 0, element 1 a KL > 1
    kl_elems = kl_divergence(Categorical(logits=post), Categorical(logits=prior)).sum(-1)
    avg, _ = kl_balance(post, prior, free=1.0, free_avg=True)
    per, _ = kl_balance(post, prior, free=1.0, free_avg=False)
    assert avg.item() == pytest.approx(max(kl_elems.mean().item(), 1.0))
    assert per.item() == pytest.approx(torch.clamp(kl_elems, min=1.0).mean().item())


def test_straight_through_forward_is_one_hot_and_gradient_reaches_logits():
    torch.manual_seed(0)
    logits = torch.randn(64, 5, 4, requires_grad=True)
    sample = straight_through_sample(logits)
    assert torch.all((sample == 0) | (sample == 1))
    assert torch.all(sample.sum(-1) == 1)
    weights = torch.randn(64, 5, 4)
    (grad,) = torch.autograd.grad((sample * weights).sum(), logits)
    (expected,) = torch.autograd.grad((logits.softmax(-1) * weights).sum(), logits)
    torch.testing.assert_close(grad, expected)  # the gradient of the probabilities, passed straight through
    assert grad.abs().sum() > 0


def test_straight_through_samples_follow_the_distribution():
    torch.manual_seed(0)
    logits = torch.tensor([2.0, 0.0, -1.0]).expand(20000, 1, 3)
    freq = straight_through_sample(logits).detach().mean((0, 1))
    torch.testing.assert_close(freq, torch.tensor([2.0, 0.0, -1.0]).softmax(0), atol=0.015, rtol=0)


def make_rssm():
    return RSSM(embed_dim=10, action_dim=3, deter=16, hidden=12, stoch=4, classes=5)


def test_rssm_observe_and_imagine_shapes():
    rssm = make_rssm()
    b, t = 3, 7
    post, prior = rssm.observe(torch.randn(b, t, 10), torch.randn(b, t, 3), torch.zeros(b, t, dtype=torch.bool))
    for state in (post, prior):
        assert state.deter.shape == (b, t, 16)
        assert state.stoch.shape == (b, t, 4, 5) and state.logits.shape == (b, t, 4, 5)
        assert state.feat.shape == (b, t, rssm.feat_dim) and rssm.feat_dim == 16 + 20
    torch.testing.assert_close(post.deter, prior.deter)  # the posterior refines only the stochastic part
    start = post.map(lambda x: x.flatten(0, 1))
    states, actions = rssm.imagine(lambda s: torch.tanh(s.feat[:, :3]), start, horizon=5)
    assert states.deter.shape == (6, b * t, 16) and actions.shape == (5, b * t, 3)
    torch.testing.assert_close(states.deter[0], start.deter)  # imagination starts from the real state


def test_is_first_resets_the_state_inside_a_sequence():
    torch.manual_seed(0)
    rssm = make_rssm()
    b, t, k = 2, 8, 5
    embed, action = torch.randn(b, t, 10), torch.randn(b, t, 3)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, k] = True
    post_full, _ = rssm.observe(embed, action, is_first)
    post_tail, _ = rssm.observe(embed[:, k:], action[:, k:], is_first[:, k:])
    # At the reset step the result cannot depend on anything before it (history, action a_k).
    torch.testing.assert_close(post_full.deter[:, k], post_tail.deter[:, 0])
    torch.testing.assert_close(post_full.logits[:, k], post_tail.logits[:, 0])
    # Without the reset, the same step depends on the history.
    post_cont, _ = rssm.observe(embed, action, torch.zeros(b, t, dtype=torch.bool))
    assert (post_cont.deter[:, k] - post_tail.deter[:, 0]).abs().max() > 1e-3
    # The reset equals starting from the zero state with a zero action.
    zero_action = action[:, k:].clone()
    zero_action[:, 0] = 0
    post_zero, _ = rssm.observe(embed[:, k:], zero_action, torch.zeros(b, t - k, dtype=torch.bool))
    torch.testing.assert_close(post_zero.deter[:, 0], post_tail.deter[:, 0])


def test_observe_is_a_loop_of_obs_step_with_the_same_random_numbers():
    """`observe` is arranged for speed (the embeddings' product before the loop, the prior's head after it) but,
    seeded alike, returns what a plain loop of `obs_step` returns: the same samples, values and gradients."""
    torch.manual_seed(0)
    rssm = make_rssm()
    b, t = 3, 9
    embed, action = torch.randn(b, t, 10, requires_grad=True), torch.randn(b, t, 3)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = is_first[1, 4] = True
    start = State(torch.randn(b, 16), straight_through_sample(torch.randn(b, 4, 5)), torch.randn(b, 4, 5))

    def loop():
        state, posts, priors = start, [], []
        for i in range(t):
            state, prior = rssm.obs_step(state, action[:, i], embed[:, i], is_first[:, i])
            posts.append(state)
            priors.append(prior)
        return State.stack(posts, 1), State.stack(priors, 1)

    results = []
    for run in (loop, lambda: rssm.observe(embed, action, is_first, start)):
        torch.manual_seed(1)
        post, prior = run()
        weights = torch.linspace(-1, 1, rssm.feat_dim)  # a loss through every output, samples included
        loss = ((post.feat * weights).sum() + (prior.feat * weights).sum() + post.logits.square().sum()
                + prior.logits.tanh().sum())
        grads = torch.autograd.grad(loss, [embed, *rssm.parameters()])
        results.append((post, prior, grads))
    (post_a, prior_a, grads_a), (post_b, prior_b, grads_b) = results
    assert torch.equal(post_a.stoch, post_b.stoch) and torch.equal(prior_a.stoch, prior_b.stoch)
    assert not torch.equal(post_b.stoch, prior_b.stoch)  # the two samples are different draws
    for a, b_ in zip([*post_a, *prior_a, *grads_a], [*post_b, *prior_b, *grads_b], strict=True):
        torch.testing.assert_close(a, b_, atol=1e-5, rtol=1e-5)


def random_batch(b: int, t: int, reward: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A (B, T) replay batch of random frames and 2-d actions, no resets or terminals (random rewards unless given)."""
    obs, action = torch.randint(0, 256, (b, t, 64, 64, 3), dtype=torch.uint8), torch.randn(b, t, 2)
    return {"obs": obs, "action": action, "reward": torch.randn(b, t) if reward is None else reward,
            "is_first": torch.zeros(b, t, dtype=torch.bool), "is_terminal": torch.zeros(b, t, dtype=torch.bool)}


def test_world_model_loss_terms_and_gradients():
    config = Config.preset("debug")
    wm = WorldModel(config, action_dim=2)
    b, t = 2, 4
    batch = random_batch(b, t)
    loss, post, metrics = wm.loss(batch)
    expected = (metrics["image_loss"] + metrics["reward_loss"] + config.discount_scale * metrics["discount_loss"])
    assert loss.item() >= expected.item()  # plus the non-negative KL term
    assert post.deter.shape == (b, t, config.deter)
    loss.backward()
    for name, module in [("encoder", wm.encoder), ("rssm", wm.rssm), ("decoder", wm.decoder),
                         ("reward", wm.reward_head), ("discount", wm.discount_head)]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name


def test_image_loss_is_the_per_frame_normal_nll_averaged_over_frames():
    """The fused image term equals normal_nll(...).mean() in value and in the decoder's gradient."""
    config = Config.preset("debug")
    torch.manual_seed(0)
    wm = WorldModel(config, action_dim=2)
    b, t = 2, 3
    batch = random_batch(b, t)
    loss, post, metrics = wm.loss(batch)
    loss.backward()  # the decoder gets its gradient from the image term alone
    feat = post.feat.detach()
    frames = batch["obs"].float() / 255 - 0.5  # (B, T, H, W, 3), written out without preprocess
    mean = wm.decoder(feat).movedim(-3, -1)
    expected = (0.5 * (mean - frames) ** 2).sum((-3, -2, -1)).mean()
    torch.testing.assert_close(metrics["image_loss"], expected.detach(), rtol=1e-5, atol=0)
    for param, grad in zip(wm.decoder.parameters(), torch.autograd.grad(expected, list(wm.decoder.parameters())),
                           strict=True):
        torch.testing.assert_close(param.grad, grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(normal_nll(wm.decoder(feat), preprocess(batch["obs"]), event_dims=3).mean(), expected,
                               rtol=1e-5, atol=0)


def test_reward_transform_tanh_makes_tanh_r_the_reward_heads_target():
    config = Config.preset("debug", reward_transform="tanh")
    torch.manual_seed(0)
    wm = WorldModel(config, action_dim=2)
    b, t = 3, 4
    reward = torch.tensor([[-5.0, 0.0, 0.3, 2.0], [1.0, -0.5, 10.0, 0.1], [0.0, 0.0, -2.0, 4.0]])
    batch = random_batch(b, t, reward)
    losses = {}
    for transform, target in (("tanh", torch.tanh(reward)), ("none", reward)):
        wm.config = config.replace(reward_transform=transform)
        torch.manual_seed(1)  # the same latent samples for both transforms
        _, post, metrics = wm.loss(batch)
        with torch.no_grad():
            mean = wm.reward_head(post.feat).squeeze(-1)
        # Normal(mean, 1) negative log-likelihood without its constant, averaged over the batch.
        expected = (0.5 * (mean - target) ** 2).sum() / (b * t)
        torch.testing.assert_close(metrics["reward_loss"], expected)
        losses[transform] = metrics["reward_loss"].item()
    assert losses["none"] > losses["tanh"] + 1.0  # the raw rewards 10 and -5 are far from any squashed target


def test_paper_preset_sizes():
    config = Config.preset("paper")
    wm = WorldModel(config, action_dim=18)
    assert wm.encoder.out_dim == 1536
    assert wm.rssm.feat_dim == 600 + 32 * 32
    n = sum(p.numel() for p in wm.parameters())
    assert 19e6 < n < 21e6, n  # the paper reports about 20M world-model parameters


def test_bad_observations_give_clear_errors():
    wm = WorldModel(Config.preset("debug"), action_dim=2)
    with pytest.raises(TypeError, match="uint8"):
        wm.embed(torch.zeros(2, 64, 64, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 64, 64, 3\)"):
        wm.embed(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="observe expects"):
        wm.rssm.observe(torch.zeros(2, 3, wm.encoder.out_dim), torch.zeros(2, 4, 2), torch.zeros(2, 3))


def test_decoder_shapes_and_its_first_layer_shortcut_equals_the_transposed_convolution():
    from dreamer_tutorial.networks import ConvDecoder, ConvEncoder

    torch.manual_seed(0)
    encoder, decoder = ConvEncoder(depth=8), ConvDecoder(feat_dim=20, depth=8)
    assert encoder(torch.rand(5, 2, 3, 64, 64) - 0.5).shape == (5, 2, 32 * 8)
    feat = torch.randn(6, 20)
    out = decoder(feat)
    assert out.shape == (6, 3, 64, 64)
    # The reference: every layer as a transposed convolution, starting from a 1x1 "image".
    reference = decoder.deconvs(decoder.linear(feat).reshape(6, 32 * 8, 1, 1))
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
