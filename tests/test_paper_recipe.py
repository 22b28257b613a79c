"""The authors' Atari recipe: the `paper` preset's values, their weight decay, glorot initialisation."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from dreamer_tutorial import Config, Dreamer
from dreamer_tutorial.intrinsic import EnsembleLinear
from dreamer_tutorial.networks import init_weights
from dreamer_tutorial.optim import AdamWithDecay

OBS = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


def test_paper_preset_is_the_atari_recipe_of_configs_yaml():
    c = Config.preset("paper")
    # configs.yaml `atari:` section (and `defaults:` where atari keeps them), in this package's field names.
    expected = dict(
        action_repeat=4, time_limit=27_000, steps=50_000_000, eval_every=250_000, log_every=10_000,
        prefill=50_000, train_every=16, replay_capacity=2_000_000, reward_transform="tanh",
        deter=600, hidden=600, stoch=32, classes=32, cnn_depth=48, mlp_units=400, mlp_layers=4,
        model_lr=2e-4, actor_lr=4e-5, critic_lr=1e-4, intrinsic_lr=3e-4, adam_eps=1e-5, grad_clip=100.0,
        weight_decay=1e-6, actor_entropy=1e-3, gamma=0.999, lambda_=0.95, horizon=15, kl_scale=0.1,
        kl_free=0.0, kl_balance=0.8, discount_scale=5.0, batch_size=16, batch_length=50, target_update_every=100,
        actor_grad="auto", actor_grad_mix=0.1, actor_min_std=0.1, num_envs=1, eval_episodes=1,
        image_size=64, init="glorot", precision="bf16", intrinsic="none",
    )
    actual = {name: getattr(c, name) for name in expected}
    assert actual == expected


def test_other_presets_keep_torch_init_no_decay_and_raw_rewards():
    for name in ("debug", "small", "carracing"):
        c = Config.preset(name)
        assert (c.reward_transform, c.weight_decay, c.init) == ("none", 0.0, "torch"), name


def test_weight_decay_step_equals_the_authors_order_by_hand():
    # Authors (tfutils.Optimizer): gradients at the current weights, then theta *= (1 - wd), then the Adam step
    # with those gradients. Adam at step k: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    # theta -= lr * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps).
    lr, eps, wd, b1, b2 = 0.01, 1e-5, 0.05, 0.9, 0.999
    theta = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    grads = [torch.tensor([0.3, -0.2, 0.0, 1.5], dtype=torch.float64),
             torch.tensor([-0.1, 0.4, 0.2, 1.0], dtype=torch.float64)]
    param = nn.Parameter(theta.clone())
    opt = AdamWithDecay([param], lr, eps, wd)
    m, v, expected = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), theta.clone()
    for k, g in enumerate(grads, start=1):
        param.grad = g.clone()
        opt.step()
        expected = (1 - wd) * expected
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        expected = expected - lr * (m / (1 - b1**k)) / ((v / (1 - b2**k)).sqrt() + eps)
        torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-12)
    # The decay is not scaled by the learning rate (torch's AdamW would shrink by 1 - lr * wd).
    zero = nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = AdamWithDecay([zero], lr, eps, wd)
    zero.grad = torch.zeros(1, dtype=torch.float64)
    opt.step()
    assert zero.item() == pytest.approx(3.0 * (1 - wd), abs=1e-12)


def test_weight_decay_zero_is_plain_adam():
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(5))
    b = nn.Parameter(a.detach().clone())
    opt_a, opt_b = AdamWithDecay([a], 1e-3, 1e-5, 0.0), torch.optim.Adam([b], 1e-3, eps=1e-5)
    for _ in range(3):
        g = torch.randn(5)
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert opt_a.state_dict()["param_groups"][0].keys() == opt_b.state_dict()["param_groups"][0].keys()
    with pytest.raises(ValueError, match=r"weight_decay must lie in \[0, 1\)"):
        AdamWithDecay([a], 1e-3, 1e-5, 1.0)


def test_a_loaded_state_brings_the_moments_but_the_learning_rate_and_eps_stay_the_new_ones():
    # A run resumed with a lower learning rate must step with it: torch's load_state_dict alone would restore
    # the saved lr and eps. The next step is checked against Adam's update written out by hand.
    torch.manual_seed(0)
    old = nn.Parameter(torch.randn(4, dtype=torch.float64))
    opt_old = AdamWithDecay([old], 1e-3, 1e-5)
    for _ in range(3):
        old.grad = torch.randn(4, dtype=torch.float64)
        opt_old.step()
    saved = opt_old.state_dict()
    new = nn.Parameter(old.detach().clone())
    opt_new = AdamWithDecay([new], 2e-4, 1e-8)
    opt_new.load_state_dict(saved)
    assert (opt_new.param_groups[0]["lr"], opt_new.param_groups[0]["eps"]) == (2e-4, 1e-8)
    g = torch.randn(4, dtype=torch.float64)
    m = 0.9 * saved["state"][0]["exp_avg"] + 0.1 * g
    v = 0.999 * saved["state"][0]["exp_avg_sq"] + 0.001 * g ** 2
    t = 4  # the loaded step count (3) plus this step
    expected = old.detach() - 2e-4 * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-8)
    new.grad = g
    opt_new.step()
    torch.testing.assert_close(new.detach(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("intrinsic,expl", [("none", False), ("plan2explore", True), ("curiosity", False)])
def test_every_optimiser_of_the_agent_decays_every_trained_weight(intrinsic, expl):
    torch.manual_seed(0)
    config = Config.preset("debug", device="cpu", weight_decay=1e-6, intrinsic=intrinsic, expl_behavior=expl)
    agent = Dreamer(config, OBS, gym.spaces.Discrete(3))
    opts = agent.optimizers()
    assert all(isinstance(o, AdamWithDecay) and o.weight_decay == 1e-6 for o in opts.values()), opts
    optimised = [p for o in opts.values() for g in o.param_groups for p in g["params"]]
    trained = [p for p in agent.parameters() if p.requires_grad]
    assert len({id(p) for p in optimised}) == len(optimised)  # no parameter in two optimisers
    assert {id(p) for p in optimised} == {id(p) for p in trained}


def _glorot_bound(fan_in, fan_out):
    return math.sqrt(6.0 / (fan_in + fan_out))


@pytest.mark.parametrize("layer,fan_in,fan_out", [
    (nn.Linear(300, 200), 300, 200),
    (nn.Conv2d(16, 32, 4, 2), 16 * 16, 32 * 16),
    (nn.ConvTranspose2d(48, 24, 5, 2), 24 * 25, 48 * 25),
])
def test_glorot_init_bound_variance_and_zero_bias(layer, fan_in, fan_out):
    torch.manual_seed(0)
    init_weights(layer, "glorot")
    w, bound = layer.weight.detach(), _glorot_bound(fan_in, fan_out)
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound  # fills the range (torch's default bound 1/sqrt(fan_in) is smaller)
    assert w.var().item() == pytest.approx(2.0 / (fan_in + fan_out), rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0


def test_glorot_init_of_ensemble_layers_is_per_member():
    torch.manual_seed(0)
    layer = EnsembleLinear(4, 300, 200)
    init_weights(layer, "glorot")
    bound = _glorot_bound(300, 200)
    for member in layer.weight.detach():
        assert bound * 0.99 < member.abs().max() <= bound
        assert member.var().item() == pytest.approx(2.0 / 500, rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0


def test_agent_with_glorot_init_has_keras_initial_weights_everywhere():
    torch.manual_seed(0)
    config = Config.preset("debug", device="cpu", init="glorot", intrinsic="plan2explore", expl_behavior=True)
    agent = Dreamer(config, OBS, gym.spaces.Discrete(3))
    layers = norms = 0
    for module in agent.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = module.weight
            receptive = w[0, 0].numel()
            bound = _glorot_bound(w.shape[1] * receptive, w.shape[0] * receptive)
            assert w.abs().max() <= bound
            assert module.bias is None or torch.count_nonzero(module.bias) == 0
            layers += 1
        elif isinstance(module, nn.LayerNorm):  # the GRU's LayerNorm keeps scale 1, shift 0
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
            norms += 1
    assert layers > 20 and norms >= 1
    # torch's default (the other presets) keeps its non-zero uniform biases.
    plain = Dreamer(Config.preset("debug", device="cpu"), OBS, gym.spaces.Discrete(3))
    assert torch.count_nonzero(plain.world_model.reward_head[0].bias) > 0


def test_unknown_init_scheme_is_rejected():
    with pytest.raises(ValueError, match="init scheme must be torch or glorot"):
        init_weights(nn.Linear(2, 2), "xavier")


def test_a_copied_optimiser_keeps_its_weight_decay():
    import copy
    import pickle

    param = torch.nn.Parameter(torch.ones(3))
    opt = AdamWithDecay([param], lr=1e-3, eps=1e-5, weight_decay=0.25)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone.weight_decay == 0.25
        clone.param_groups[0]["params"][0].grad = torch.zeros(3)
        clone.step()  # a zero gradient: only the decay moves the weights
        torch.testing.assert_close(clone.param_groups[0]["params"][0].detach(), torch.full((3,), 0.75))
