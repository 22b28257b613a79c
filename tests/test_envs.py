"""make_env and its wrappers: frame format, action mapping, action repeat, and the PointReach toy env."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

from dreamer_tutorial import Config, make_env
from dreamer_tutorial.envs import (
    CAR_WRAPPERS,
    ActionRepeat,
    CarRacingActions,
    CarRacingThrottle,
    NormalizeActions,
    PointReachEnv,
    ResizeObservation,
)


def test_pointreach_frames_and_dense_reward():
    env = make_env("dreamer_tutorial/PointReach-v0", seed=0)
    obs, info = env.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    point, target = env.unwrapped.point.copy(), env.unwrapped.target
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
    expected_point = np.clip(point + np.array([0.15, 0.0]), -1, 1)
    np.testing.assert_allclose(env.unwrapped.point, expected_point, atol=1e-6)
    assert reward == pytest.approx(-np.linalg.norm(expected_point - target), abs=1e-6)
    # The frame shows the point (red) and the target (green) where the state says they are.
    row, col = int((1 - expected_point[1]) / 2 * 64), int((expected_point[0] + 1) / 2 * 64)
    assert tuple(obs[min(row, 63), min(col, 63)]) == (230, 40, 40)


def test_pointreach_episode_is_50_steps_and_truncated():
    env = make_env("dreamer_tutorial/PointReachDiscrete-v0", seed=0)
    env.reset()
    for step in range(1, 51):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (step == 50)


def test_pointreach_sparse_reward_and_fixed_target():
    env = PointReachEnv(sparse=True, target=(0.0, 0.0))
    env.reset(seed=0)
    env.point = np.array([0.05, 0.0], np.float32)
    assert env.step(np.zeros(2))[1] == 1.0
    env.point = np.array([0.9, 0.9], np.float32)
    assert env.step(np.zeros(2))[1] == 0.0
    with pytest.raises(ValueError, match="target"):
        PointReachEnv(target=(2.0, 0.0))


def _in_wall(x, y):  # the two-rooms wall, written out independently of the env: x in [-0.05, 0.05] minus the gap
    return -0.05 <= x <= 0.05 and not 0.4 < y < 0.9


def test_pointrooms_walls_block_and_the_gap_lets_through():
    env = PointReachEnv(layout="two_rooms", sparse=True, radius=0.1)
    env.reset(seed=0)
    np.testing.assert_allclose(env.point, (-0.6, -0.6))
    for _ in range(10):  # push right: stopped by the wall, y unchanged
        env.step(np.array([1.0, 0.0]))
    assert -0.1 < env.point[0] < -0.05 and env.point[1] == pytest.approx(-0.6)
    env.step(np.array([1.0, 1.0]))  # diagonal into the wall: slides up by a full step
    assert env.point[0] < -0.05 and env.point[1] == pytest.approx(-0.45, abs=1e-5)
    env.point = np.array([-0.3, 0.65], np.float32)  # level with the gap: passes into the right room
    for _ in range(4):
        env.step(np.array([1.0, 0.0]))
    assert env.point[0] == pytest.approx(0.3, abs=1e-5) and env.point[1] == pytest.approx(0.65)
    rng = np.random.default_rng(0)
    for step in range(3000):  # random actions (and a reset now and then) never put the point inside the wall
        if step % 100 == 0:
            env.point = rng.uniform(-1, 1, 2).astype(np.float32)
            while _in_wall(*env.point):
                env.point = rng.uniform(-1, 1, 2).astype(np.float32)
        env.step(rng.uniform(-1, 1, 2))
        assert not _in_wall(*env.point)


def test_pointrooms_reward_only_at_the_target_and_100_step_episodes():
    env = make_env("dreamer_tutorial/PointRooms-v0")
    obs, info = env.reset(seed=0)
    assert info["distance"] == pytest.approx(1.2)
    unwrapped = env.unwrapped
    for offset, expected in ((0.0, 1.0), (0.09, 1.0), (0.11, 0.0), (0.5, 0.0)):
        unwrapped.point = np.array([0.6 + offset, -0.6], np.float32)
        assert env.step(np.zeros(2))[1] == expected
    env.reset()
    truncated = [env.step(np.zeros(2))[3] for _ in range(100)]
    assert truncated == [False] * 99 + [True]


def test_random_actions_almost_never_reach_the_pointrooms_target():
    env = PointReachEnv(layout="two_rooms", sparse=True, radius=0.1)
    rng, reached = np.random.default_rng(1), 0
    for episode in range(100):
        env.reset(seed=episode)
        reached += sum(env.step(rng.uniform(-1, 1, 2))[1] for _ in range(100)) > 0
    assert reached <= 2


def test_pointrooms_frames_show_the_walls_and_the_noisy_tv():
    env = PointReachEnv(layout="two_rooms", noisy_tv=True)
    frame, _ = env.reset(seed=0)

    def pixel(x, y):  # the frame's pixel at the position (x, y)
        return tuple(frame[min(int((1 - y) / 2 * 64), 63), min(int((x + 1) / 2 * 64), 63)])

    assert pixel(0.0, 0.0) == (120, 120, 120) and pixel(0.0, -0.95) == (120, 120, 120)  # wall
    assert pixel(0.0, 0.65) == (30, 30, 30)  # the gap
    assert pixel(-0.6, -0.6) == (230, 40, 40) and pixel(0.6, -0.6) == (40, 200, 60)  # point and target
    calm = env.step(np.zeros(2))[0]
    np.testing.assert_array_equal(calm, env.step(np.zeros(2))[0])  # outside the TV nothing changes
    env.point = np.array([-0.75, -0.75], np.float32)  # in the TV: the background flickers, a new colour each step
    first, second = env.step(np.zeros(2))[0], env.step(np.zeros(2))[0]
    corner = (slice(0, 3), slice(0, 3))  # top left: background, far from the point
    assert np.all(first[corner] == first[0, 0]) and np.all(second[corner] == second[0, 0])
    assert len({tuple(first[0, 0]), tuple(second[0, 0]), tuple(calm[0, 0])}) == 3
    assert tuple(first[32, 32]) == (120, 120, 120)  # the wall stays drawn
    open_frame, _ = PointReachEnv(layout="open").reset(seed=0)
    assert not np.any(np.all(open_frame == 120, -1))  # no walls in the open square


def test_pointrooms_bad_inputs():
    with pytest.raises(ValueError, match="layout must be one of"):
        PointReachEnv(layout="maze")
    with pytest.raises(ValueError, match="outside the walls"):
        PointReachEnv(layout="two_rooms", target=(0.0, 0.0))


def test_greedy_policy_beats_random_on_pointreach():
    """The task is learnable: heading for the target scores far above random (the learning test relies on it)."""
    def run(policy, episodes=20):
        env = make_env("dreamer_tutorial/PointReach-v0", seed=1)
        returns = []
        for _ in range(episodes):
            env.reset()
            total, done = 0.0, False
            while not done:
                _, r, terminated, truncated, _ = env.step(policy(env))
                total, done = total + r, terminated or truncated
            returns.append(total)
        return np.mean(returns)

    random_return = run(lambda env: env.action_space.sample())
    greedy_return = run(lambda env: np.clip((env.unwrapped.target - env.unwrapped.point) / 0.15, -1, 1))
    assert random_return < -35 and greedy_return > -8, (random_return, greedy_return)


def test_carracing_wrappers_map_actions_resize_and_repeat():
    env = make_env("CarRacing-v3", image_size=64, action_repeat=2, seed=0)
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space == gym.spaces.Box(-1, 1, (3,), np.float32)
    mapper = env.env.env  # TimeLimit is absent (time_limit=0): Resize -> ActionRepeat -> CarRacingActions
    assert isinstance(mapper, CarRacingActions)
    np.testing.assert_allclose(mapper.action(np.array([-1.0, -1.0, 1.0])), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(mapper.action(np.array([0.5, 0.0, -1.0])), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(mapper.action(np.array([3.0, 2.0, -5.0])), [1.0, 1.0, 0.0])  # clipped
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert obs.flags.writeable  # a read-only frame makes torch.as_tensor warn in the policy
    obs, reward, *_ = env.step(np.zeros(3, np.float32))
    assert obs.shape == (64, 64, 3) and np.isfinite(reward)


def _speed_after(env, action, steps=40):
    env.reset(seed=4)
    for _ in range(steps):
        env.step(np.asarray(action, np.float32))
    return float(np.linalg.norm(env.unwrapped.car.hull.linearVelocity))


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # checking the wrapper is the point
def test_carracing_throttle_is_one_axis_for_gas_or_brake():
    env = make_env("CarRacing-v3", 64, 2, car_actions="throttle")
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    check_env(env, skip_render_check=True)
    assert [w.name for w in env.spec.additional_wrappers][0] == "CarRacingThrottle"
    assert gym.make(env.spec).action_space.shape == (2,)  # the spec rebuilds the 2-d env
    mapper = env.env.env
    assert isinstance(mapper, CarRacingThrottle)
    np.testing.assert_allclose(mapper.action(np.array([0.3, 0.6])), [0.3, 0.6, 0.0])
    np.testing.assert_allclose(mapper.action(np.array([-0.2, -0.5])), [-0.2, 0.0, 0.5])
    np.testing.assert_allclose(mapper.action(np.array([2.0, -3.0])), [1.0, 0.0, 1.0])  # clipped to [-1, 1]
    mapped = np.array([mapper.action(a) for a in np.random.default_rng(0).uniform(-1, 1, (500, 2))])
    assert np.all(mapped[:, 1] * mapped[:, 2] == 0)  # gas and brake never at once
    assert np.all((mapped[:, 1:] >= 0) & (mapped[:, 1:] <= 1))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        mapper.action(np.zeros(3))
    # The physics: full throttle drives off, full reverse throttle (brake) stays still, and the 3-d mapping's
    # "full gas and full brake" corner, the one the CPU runs got stuck in, stays still too.
    gas_brake = make_env("CarRacing-v3", 64, 2)
    assert _speed_after(env, [0, 1]) > 20 and _speed_after(env, [0, -1]) < 0.5
    assert _speed_after(gas_brake, [0, 1, 1]) < 0.5 < 20 < _speed_after(gas_brake, [0, 1, -1])
    with pytest.raises(ValueError, match="car_actions must be one of gas_brake, throttle"):
        make_env("CarRacing-v3", car_actions="pedals")


def test_config_accepts_exactly_the_car_wrappers():
    # Config keeps its own list of car_actions (config.py does not import gymnasium): it must not drift from envs.
    for name in CAR_WRAPPERS:
        assert Config(car_actions=name).car_actions == name
    with pytest.raises(ValueError) as error:
        Config(car_actions="pedals")
    listed = str(error.value).split("must be one of ")[1].split(", got")[0]
    assert listed.split(", ") == list(CAR_WRAPPERS)


def test_action_map_is_gymnasiums_rescale_after_clipping():
    """Inside [-1, 1] the map is exactly gymnasium's RescaleAction(env, -1, 1); outside, RescaleAction would
    extrapolate (a negative brake reaches CarRacing's physics), ours clips first."""
    raw = gym.make("CarRacing-v3")
    ours, theirs = CarRacingActions(raw), gym.wrappers.RescaleAction(raw, np.float32(-1), np.float32(1))
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, (200, 3)).astype(np.float32)
    inside = np.all(np.abs(actions) <= 1, axis=1)
    for a, ok in zip(actions, inside):
        np.testing.assert_array_equal(ours.action(a), theirs.action(np.clip(a, -1, 1)))
        if ok:
            np.testing.assert_array_equal(ours.action(a), theirs.action(a))
    assert 0 < inside.sum() < len(actions)  # both cases were exercised
    np.testing.assert_allclose(theirs.action(np.array([0.0, 0.0, -3.0], np.float32)), [0.0, 0.5, -1.0])
    pendulum = NormalizeActions(gym.make("Pendulum-v1"))  # torque in [-2, 2]
    np.testing.assert_allclose([pendulum.action(np.array([a], np.float32))[0] for a in (-1, 0.25, 3)],
                               [-2.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="finite bounds"):
        NormalizeActions(gym.make("CartPole-v1"))


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # checking the wrappers is the point
@pytest.mark.parametrize("name", ["CarRacing-v3", "dreamer_tutorial/PointReach-v0",
                                  "dreamer_tutorial/PointReachDiscrete-v0", "dreamer_tutorial/PointRooms-v0"])
def test_wrapped_envs_pass_gymnasiums_env_checker(name):
    env = make_env(name, 64, 2)
    check_env(env, skip_render_check=True)  # raises on any violation of gymnasium's API
    names = [w.name for w in env.spec.additional_wrappers]
    mapper = ["CarRacingActions"] if name.startswith("CarRacing") else [] if "Discrete" in name else [
        "NormalizeActions"]
    assert names == mapper + ["ActionRepeat", "ResizeObservation"]
    assert {w.name: w.kwargs for w in env.spec.additional_wrappers}["ActionRepeat"] == {"repeat": 2}


def test_spec_rebuilds_the_same_env():
    env = make_env("dreamer_tutorial/PointReach-v0", image_size=32, action_repeat=3, time_limit=7)
    copy = gym.make(env.spec)
    assert str(copy) == str(env) and copy.observation_space.shape == (32, 32, 3)
    actions = np.random.default_rng(0).uniform(-1, 1, (7, 2)).astype(np.float32)
    runs = []
    for e in (env, copy):
        frames, truncated = [e.reset(seed=5)[0]], []
        for a in actions:
            obs, _, _, trunc, _ = e.step(a)
            frames.append(obs)
            truncated.append(trunc)
        assert truncated == [False] * 6 + [True]  # time_limit counts policy steps
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])


class _Counter(gym.Env):
    """Reward 1 per frame, terminates after 5 frames; records how many frames ran."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        self.frames = 0
        return np.full((8, 8, 3), 0, np.uint8), {}

    def step(self, action):
        self.frames += 1
        return np.full((8, 8, 3), self.frames, np.uint8), 1.0, self.frames >= 5, False, {}


def test_action_repeat_sums_rewards_and_stops_at_episode_end():
    env = ActionRepeat(_Counter(), 3)
    env.reset()
    obs, reward, terminated, _, _ = env.step(0)
    assert reward == 3.0 and not terminated and obs[0, 0, 0] == 3
    obs, reward, terminated, _, _ = env.step(0)
    assert reward == 2.0 and terminated and env.unwrapped.frames == 5  # stopped after the terminal frame


def test_action_repeat_draws_car_racing_once_per_step_and_returns_the_frames_of_drawing_every_frame(monkeypatch):
    """CarRacing under ActionRepeat(2) draws only the last frame of each repeat, yet returns what stepping a twin env
    frame by frame returns: frames (the score shown on them included), rewards and flags; also when the episode
    ends on the first frame of a repeat (the skipped frame is then drawn)."""
    from gymnasium.envs.box2d.car_racing import CarRacing

    draws = []
    draw = CarRacing._render
    monkeypatch.setattr(CarRacing, "_render", lambda self, mode: draws.append(mode) or draw(self, mode))
    repeated, plain = ActionRepeat(gym.make("CarRacing-v3"), 2), gym.make("CarRacing-v3")
    repeated.reset(seed=3)
    plain.reset(seed=3)
    rng = np.random.default_rng(0)
    for step in range(80):
        action = np.array([rng.uniform(-0.3, 0.3), rng.uniform(0.2, 0.6), 0.0], np.float32)
        if step == 79:  # the lap counts as finished at the next frame: the first frame of this repeat
            for env in (repeated.unwrapped, plain.unwrapped):
                # a score the step's -0.1 rounds differently: the frame must show the score before it (0124, not 0123)
                env.new_lap, env.reward, env.prev_reward = True, 123.55, 123.55
        del draws[:]
        obs, reward, terminated, truncated, _ = repeated.step(action)
        assert draws == ["state_pixels"]  # one drawing per policy step (at the end of the repeat, or at the end)
        total = 0.0
        for _ in range(2):
            expected, frame_reward, plain_terminated, plain_truncated, _ = plain.step(action)
            total += float(frame_reward)
            if plain_terminated or plain_truncated:
                break
        np.testing.assert_array_equal(obs, expected)
        assert (reward, terminated, truncated) == (total, plain_terminated, plain_truncated)
    assert terminated and repeated.unwrapped.tile_visited_count > 5  # tiles were visited: the score shown changed
    # reset's own frame, 79 repeats of two frames, then one: the episode ended on the first frame of the last repeat
    assert repeated.unwrapped.t == plain.unwrapped.t == pytest.approx((1 + 2 * 79 + 1) / 50)
    # A wrapper that changes the frames in between, or another env: every frame is drawn as the env does it.
    assert ActionRepeat(ResizeObservation(gym.make("CarRacing-v3"), 64), 2)._car is None
    assert ActionRepeat(_Counter(), 2)._car is None


def test_resize_averages_areas():
    env = ResizeObservation(_Counter(), 4)
    env.reset()
    obs, *_ = env.step(0)
    assert obs.shape == (4, 4, 3) and obs.dtype == np.uint8 and np.all(obs == 1)
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[:, :4] = 200  # left half bright: each output pixel averages a 2x2 block
    out = env.observation(frame)
    assert np.all(out[:, :2] == 200) and np.all(out[:, 2:] == 0)


def test_bad_env_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="PointReach"):
        make_env("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="action_repeat"):
        make_env("dreamer_tutorial/PointReach-v0", action_repeat=0)
    with pytest.raises(ValueError, match="RGB frames"):
        ResizeObservation(gym.make("CartPole-v1"), 64)
    with pytest.raises(ValueError, match=r"CartPole-v1 observes Box \(4,\) float32, but Dreamer needs pixel frames "
                                         r"\(uint8 H x W x 3\): pass pixels=True"):
        make_env("CartPole-v1")
    env = make_env("dreamer_tutorial/PointReach-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        env.step(np.zeros(3))


def test_pixels_option_observes_rendered_frames():
    env = make_env("CartPole-v1", image_size=32, pixels=True)
    obs, _ = env.reset(seed=0)
    render = env.unwrapped.render()  # (400, 600, 3): the frame before resizing
    assert render.shape == (400, 600, 3) and obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, np.array(Image.fromarray(render).resize((32, 32), Image.BOX)))
    for _ in range(5):
        obs2, *_ = env.step(1)  # push right: the cart and pole move, so the frame changes
    assert np.abs(obs2.astype(int) - obs).max() > 50
