"""Config presets, overrides and validation."""

import pytest

from dreamer_tutorial import Config
from dreamer_tutorial.config import quick_mode


def test_presets_and_overrides():
    for name in ("debug", "small", "carracing", "paper"):
        assert isinstance(Config.preset(name), Config)
    paper = Config.preset("paper")
    assert (paper.deter, paper.stoch, paper.classes, paper.cnn_depth) == (600, 32, 32, 48)
    assert (paper.batch_size, paper.batch_length, paper.horizon) == (16, 50, 15)
    assert (paper.kl_balance, paper.gamma, paper.lambda_, paper.adam_eps) == (0.8, 0.999, 0.95, 1e-5)
    assert Config.preset("debug", horizon=3).horizon == 3
    assert Config.preset("carracing").env == "CarRacing-v3"
    # The CPU recipe drives with one throttle axis; everything else keeps the env's gas and brake.
    assert (Config.preset("carracing_cpu").car_actions, Config.preset("carracing").car_actions) == ("throttle",
                                                                                                   "gas_brake")
    # The long CPU recipe is carracing_cpu to 110k steps with every learning rate at a quarter from 90k.
    long, short = Config.preset("carracing_cpu_long"), Config.preset("carracing_cpu")
    assert (long.steps, long.lr_drop_step, long.lr_drop) == (110_000, 90_000, 0.25)
    assert long.replace(steps=short.steps, lr_drop_step=0, lr_drop=1.0) == short
    # ... and carracing_cpu_80k the same schedule to 80k steps, the drop at 60k.
    mid = Config.preset("carracing_cpu_80k")
    assert mid == long.replace(steps=80_000, lr_drop_step=60_000)
    # The recipe fields default to torch's init, no weight decay and raw rewards; `paper` sets the authors' values.
    assert (Config().reward_transform, Config().weight_decay, Config().init) == ("none", 0.0, "torch")
    assert (paper.reward_transform, paper.weight_decay, paper.init) == ("tanh", 1e-6, "glorot")
    assert (paper.prefill, paper.train_every, paper.replay_capacity) == (50_000, 16, 2_000_000)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match="debug.*small.*carracing.*paper"):
        Config.preset("atari")


def test_unknown_field_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown config field.*horizn.*valid fields.*horizon"):
        Config.preset("debug", horizn=3)
    with pytest.raises(ValueError, match="horizn"):
        Config.preset("debug").replace(horizn=3)


@pytest.mark.parametrize("field,value,match", [
    ("deter", -5, "deter must be a positive integer"),
    ("horizon", 0, "horizon must be a positive integer"),
    ("kl_balance", 1.5, r"kl_balance must lie in \[0, 1\]"),
    ("kl_balance", -0.1, "kl_balance"),
    ("intrinsic", "rnd", "intrinsic must be one of none, curiosity, plan2explore"),
    ("model_lr", 0.0, "model_lr must be > 0"),
    ("image_size", 96, "image_size must be 64"),
    ("reward_transform", "sign", "reward_transform must be one of none, tanh"),
    ("init", "xavier", "init must be one of torch, glorot"),
    ("car_actions", "pedals", "car_actions must be one of gas_brake, throttle"),
    ("weight_decay", -1e-6, r"weight_decay must lie in \[0, 1\)"),
    ("weight_decay", 1.0, r"weight_decay must lie in \[0, 1\)"),
    ("lr_drop", 0.0, r"lr_drop must lie in \(0, 1\]"),
    ("lr_drop", 2.0, r"lr_drop must lie in \(0, 1\]"),
    ("lr_drop_step", -1, "lr_drop_step must be a non-negative integer"),
])
def test_impossible_values_are_rejected(field, value, match):
    with pytest.raises(ValueError, match=match):
        Config.preset("debug", **{field: value})


def test_quick_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DREAMER_QUICK", "1")
    assert quick_mode()
    monkeypatch.setenv("DREAMER_QUICK", "0")
    assert not quick_mode()
