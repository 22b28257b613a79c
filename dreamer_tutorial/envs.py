"""Environments: `make_env()` and the wrappers that turn a gymnasium env into what Dreamer expects.

Dreamer sees uint8 frames of shape (64, 64, 3) and acts in [-1, 1] (continuous) or with one of n actions
(discrete). `make_env` stacks, from the inside out:

    gym.make(name)           the raw env (CarRacing-v3: 96x96 frames, steer in [-1, 1], gas/brake in [0, 1]),
                             with gymnasium's TimeLimit (the env's own, or time_limit x action_repeat frames)
    AddRenderObservation     (only with pixels=True) gymnasium's: the rendered frame replaces a state vector
    CarRacingActions         policy action in [-1, 1]^3 -> (steer, gas, brake) with gas, brake in [0, 1]
      or CarRacingThrottle   (car_actions="throttle") policy action in [-1, 1]^2 -> steer, gas or brake
      or NormalizeActions    any other bounded Box: [-1, 1] mapped linearly onto [low, high]
    ActionRepeat(k)          repeat each action k frames, sum the rewards, stop early at the episode's end
    ResizeObservation(s)     area-average the frame to s x s (uint8 in, uint8 out)

Every wrapper follows gymnasium's conventions (it records its constructor arguments), so `env.spec` names the
whole stack, `gym.make(env.spec)` rebuilds it and `gymnasium.utils.env_checker.check_env` accepts it. Where
gymnasium ships the same job we build on it: NormalizeActions is gymnasium's `RescaleAction(env, -1, 1)` plus
clipping to [-1, 1] first (RescaleAction extrapolates an out-of-range action linearly, and CarRacing clips only
gas, so a steer of 3 or a negative brake would reach the physics) and a shape check (numpy would broadcast a
wrong-shaped action silently). Two are our own: gymnasium's ResizeObservation needs opencv and interpolates,
ours area-averages with PIL (no aliasing when shrinking 96 -> 64); gymnasium's only frame-skip wrapper is part
of AtariPreprocessing, so ActionRepeat works for any env.

It also registers the course's toy pixel env, `dreamer_tutorial/PointReach-v0` (continuous) and
`dreamer_tutorial/PointReachDiscrete-v0`: a red point moves toward a green target on a 64x64 frame. Episodes
last 50 steps, the dense reward is minus the distance to the target, so a random policy scores about -50 and a
policy that heads straight for the target about -3 (continuous) or -6 (discrete). A model-based agent learns
it in minutes on a CPU.

`dreamer_tutorial/PointRooms-v0` is the exploration task of lesson 06: the same point, but two rooms joined by a
narrow gap in a wall, a fixed start in the left room, a small target deep in the right room, a sparse reward and
100-step episodes. Random actions almost never reach the target (see `PointReachEnv`).
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
from PIL import Image


# --- the toy env ---------------------------------------------------------------------------------------------------
class PointReachEnv(gym.Env):
    """A point in the square [-1, 1]^2 moves toward a target; observations are 64x64 RGB frames.

    Continuous actions (dx, dy) in [-1, 1]^2 move the point by `speed` * action; discrete actions are
    0: stay, 1: up, 2: down, 3: left, 4: right. Reward per step: -||point - target|| (dense), or with
    `sparse=True` 1 while the point is within `radius` of the target and 0 otherwise. The target is drawn at
    random each episode unless `target=(x, y)` fixes it.

    `layout="two_rooms"` adds a grey wall (x in [-0.05, 0.05]) that splits the square into two rooms joined by a
    gap at y in [0.4, 0.9], starts every episode at `START` = (-0.6, -0.6) in the left room and puts the default
    target at (0.6, -0.6) in the right room: the way in leads up through the gap and back down. The point cannot
    enter a wall: a move is taken in small sub-steps and a sub-step that would end inside the wall keeps only the
    axis that stays free (the point slides along the wall). `noisy_tv=True` makes the bottom-left corner
    (x, y <= -0.65, `TV`) a noisy TV: while the point is in it, the background of the whole frame flickers, a new
    random colour every step (three numbers that no model can predict, but a big change of the frame, so a world
    model trained to reconstruct frames must encode them in its latents).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    MOVES = np.array([[0, 0], [0, 1], [0, -1], [-1, 0], [1, 0]], np.float32)
    LAYOUTS = ("open", "two_rooms")
    WALLS = ((-0.05, -1.0, 0.05, 0.4), (-0.05, 0.9, 0.05, 1.0))  # two_rooms: (x0, y0, x1, y1) rectangles
    START = (-0.6, -0.6)
    ROOMS_TARGET = (0.6, -0.6)
    TV = (-1.0, -1.0, -0.65, -0.65)
    SUBSTEPS = 6  # 0.15 / 6 = 0.025 per sub-step, far less than the wall's thickness 0.1

    def __init__(self, discrete: bool = False, size: int = 64, speed: float = 0.15, sparse: bool = False,
                 radius: float = 0.15, target: tuple[float, float] | None = None, layout: str = "open",
                 noisy_tv: bool = False, render_mode: str | None = None):
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if layout not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {self.LAYOUTS}, got {layout!r}")
        self.walls = np.array(self.WALLS if layout == "two_rooms" else np.zeros((0, 4)), np.float32)
        if layout == "two_rooms" and target is None:
            target = self.ROOMS_TARGET
        if target is not None and not (len(target) == 2 and all(-1 <= v <= 1 for v in target)
                                       and not self.in_wall(np.asarray(target))):
            raise ValueError(f"target must be None or (x, y) inside [-1, 1]^2 and outside the walls, got {target}")
        self.discrete, self.size, self.speed, self.sparse, self.radius = discrete, size, speed, sparse, radius
        self.layout, self.noisy_tv = layout, noisy_tv
        self.fixed_target = None if target is None else np.asarray(target, np.float32)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(5) if discrete else gym.spaces.Box(-1, 1, (2,), np.float32)
        grid = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
        self._x, self._y = np.meshgrid(grid, -grid)  # image row 0 is the top (y = +1)
        self._wall_mask = np.zeros((size, size), bool)
        for x0, y0, x1, y1 in self.walls:
            self._wall_mask |= (self._x >= x0) & (self._x <= x1) & (self._y >= y0) & (self._y <= y1)
        self.point = np.zeros(2, np.float32)
        self.target = np.zeros(2, np.float32)

    def in_wall(self, point: np.ndarray) -> bool:
        x, y = point
        return bool(np.any((self.walls[:, 0] <= x) & (x <= self.walls[:, 2])
                           & (self.walls[:, 1] <= y) & (y <= self.walls[:, 3])))

    def in_tv(self) -> bool:
        return self.noisy_tv and bool(self.point[0] <= self.TV[2] and self.point[1] <= self.TV[3])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.layout == "two_rooms":
            self.point = np.array(self.START, np.float32)
        else:
            self.point = self.np_random.uniform(-0.9, 0.9, 2).astype(np.float32)
        self.target = (self.fixed_target if self.fixed_target is not None
                       else self.np_random.uniform(-0.8, 0.8, 2).astype(np.float32))
        return self._frame(), {"distance": self._distance()}

    def step(self, action):
        if self.discrete:
            if not self.action_space.contains(int(np.asarray(action))):
                raise ValueError(f"PointReachDiscrete expects an action in 0..4, got {action!r}")
            move = self.MOVES[int(np.asarray(action))]
        else:
            move = np.asarray(action, np.float32).reshape(-1)
            if move.shape != (2,) or not np.all(np.isfinite(move)):
                raise ValueError(f"PointReach expects a finite action of shape (2,), got {action!r}")
            move = np.clip(move, -1, 1)
        self.point = self._move(self.speed * move).astype(np.float32)
        dist = self._distance()
        reward = float(dist <= self.radius) if self.sparse else -dist
        return self._frame(), reward, False, False, {"distance": dist}

    def _move(self, delta: np.ndarray) -> np.ndarray:
        """The point after the move `delta`, clipped to the square and stopped by the walls (sliding along them)."""
        if not len(self.walls):
            return np.clip(self.point + delta, -1, 1)
        point, sub = self.point.astype(np.float64), delta / self.SUBSTEPS
        for _ in range(self.SUBSTEPS):
            for step in (sub, sub * (1, 0), sub * (0, 1)):  # the whole sub-step, else its free axis
                candidate = np.clip(point + step, -1, 1)
                if not self.in_wall(candidate):
                    point = candidate
                    break
        return point

    def render(self):
        return self._frame()

    def _distance(self) -> float:
        return float(np.linalg.norm(self.point - self.target))

    def _frame(self) -> np.ndarray:
        background = self.np_random.integers(0, 256, 3, dtype=np.uint8) if self.in_tv() else 30
        frame = np.full((self.size, self.size, 3), background, np.uint8)
        frame[self._wall_mask] = 120
        pixel = 2 / self.size
        for pos, colour, r in ((self.target, (40, 200, 60), 6.5 * pixel), (self.point, (230, 40, 40), 5 * pixel)):
            mask = (self._x - pos[0]) ** 2 + (self._y - pos[1]) ** 2 <= r ** 2
            frame[mask] = colour
        return frame


gym.register("dreamer_tutorial/PointReach-v0", entry_point=PointReachEnv, max_episode_steps=50)
gym.register("dreamer_tutorial/PointReachDiscrete-v0", entry_point=PointReachEnv, max_episode_steps=50,
             kwargs={"discrete": True})
gym.register("dreamer_tutorial/PointRooms-v0", entry_point=PointReachEnv, max_episode_steps=100,
             kwargs={"layout": "two_rooms", "sparse": True, "radius": 0.1})


# --- wrappers ------------------------------------------------------------------------------------------------------
def _is_frame_space(space: gym.Space) -> bool:
    return (isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.shape[-1] == 3
            and space.dtype == np.uint8)


class ResizeObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Resize uint8 (H, W, 3) frames to (size, size, 3) with area averaging (no aliasing when shrinking)."""

    def __init__(self, env: gym.Env, size: int):
        gym.utils.RecordConstructorArgs.__init__(self, size=size)
        super().__init__(env)
        if not _is_frame_space(env.observation_space):
            raise ValueError(f"ResizeObservation needs uint8 RGB frames (H, W, 3), got {env.observation_space}")
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape[:2] == (self.size, self.size):
            return obs
        return np.array(Image.fromarray(obs).resize((self.size, self.size), Image.BOX))


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Apply each action `repeat` times and sum the rewards; stop as soon as the episode ends.

    Only the last frame of a repeat is seen. CarRacing draws its frame at every physics step, and drawing is
    nearly all of its step time, so for CarRacing (when no observation wrapper sits between) the frames in
    between are not drawn: `step` returns exactly what drawing every frame returns (tests/test_envs.py), with half
    the drawing at action repeat 2. When the episode ends on a frame in between, that frame is drawn then.
    """

    def __init__(self, env: gym.Env, repeat: int):
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action repeat must be >= 1, got {repeat}")
        self.repeat = repeat
        self._car = _undrawn_car_racing(env)

    def step(self, action):
        total = 0.0
        for i in range(self.repeat):
            skip = self._car is not None and i < self.repeat - 1
            if skip:
                self._car.skip_drawing()
            try:
                obs, reward, terminated, truncated, info = self.env.step(action)
            finally:
                if skip:
                    self._car.resume_drawing()
            total += float(reward)
            if terminated or truncated:
                if skip:
                    obs = self._car.draw_skipped()
                break
        return obs, total, terminated, truncated, info


def _undrawn_car_racing(env: gym.Env) -> _CarRacingDrawing | None:
    """A `_CarRacingDrawing` when `env` is CarRacing under wrappers that pass its frames through unchanged."""
    car_racing = sys.modules.get("gymnasium.envs.box2d.car_racing")  # not loaded: no CarRacing was made
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, gym.ObservationWrapper):
            return None
        layer = layer.env
    return _CarRacingDrawing(layer) if car_racing and isinstance(layer, car_racing.CarRacing) else None


class _CarRacingDrawing:
    """Turns CarRacing's drawing of its state frame off and on between physics steps.

    CarRacing.step moves the car, then draws the frame (`_render("state_pixels")`), then subtracts the step's
    -0.1 from the score that the frame shows. While skipping, the draw call returns the previous frame and only
    notes the score; `draw_skipped` draws the frame afterwards with that score, which is the frame the step would
    have drawn (nothing else that the drawing reads changes after it inside a step). Other render modes (a
    "human" window, "rgb_array" videos) are drawn as usual."""

    def __init__(self, car: gym.Env):
        self.car, self.score = car, None

    def _note_score(self, mode: str):
        if mode != "state_pixels":
            return type(self.car)._render(self.car, mode)
        self.score = self.car.reward
        return self.car.state.copy()  # a frame of its own, as every step returns (the step discards it)

    def skip_drawing(self) -> None:
        self.car._render = self._note_score  # an instance attribute hides the class's method

    def resume_drawing(self) -> None:
        del self.car._render

    def draw_skipped(self) -> np.ndarray:
        car, shown = self.car, self.car.reward
        car.reward = self.score
        try:
            car.state = car._render("state_pixels")
        finally:
            car.reward = shown
        return car.state


class NormalizeActions(gym.wrappers.RescaleAction):
    """The policy acts in [-1, 1]^A; clip to that range, then map linearly onto the env's bounded Box [low, high]
    (gymnasium's RescaleAction(env, -1, 1) does the mapping)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)  # the first call records: none besides env
        space = env.action_space
        if not (isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low))
                and np.all(np.isfinite(space.high))):
            raise ValueError(f"NormalizeActions needs a Box with finite bounds, got {space}")
        super().__init__(env, np.full(space.shape, -1, np.float32), np.full(space.shape, 1, np.float32))

    def action(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"expected an action of shape {self.action_space.shape} in [-1, 1], got shape "
                             f"{action.shape}")
        return super().action(np.clip(action, -1, 1))


def _check_car_space(space: gym.Space, wrapper: str) -> None:
    if not (isinstance(space, gym.spaces.Box) and space.shape == (3,) and np.allclose(space.low, [-1, 0, 0])
            and np.allclose(space.high, [1, 1, 1])):
        raise ValueError(f"{wrapper} expects CarRacing's Box([-1, 0, 0], [1, 1, 1]), got {space}")


class CarRacingActions(NormalizeActions):
    """CarRacing's action is (steer in [-1, 1], gas in [0, 1], brake in [0, 1]).

    A policy in [-1, 1]^3 (the truncated-Normal actor) maps onto it with steer = a0, gas = (a1 + 1) / 2,
    brake = (a2 + 1) / 2, which is NormalizeActions for CarRacing's bounds; the class exists to name the mapping
    the seed notebook forgot (it fed raw Gaussian samples, so gas and brake were negative half of the time).
    """

    def __init__(self, env: gym.Env):
        _check_car_space(env.action_space, "CarRacingActions")
        super().__init__(env)


class CarRacingThrottle(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """CarRacing driven by two actions in [-1, 1]: steer = a0 and one throttle axis a1, with
    gas = max(a1, 0) and brake = max(-a1, 0). Gas and brake never act at once.

    Why: with the env's own three actions, the actor of our 2-core CPU runs went through a phase of
    "full gas and full brake" early in training, a corner of the action box where the car stands still (in
    one run it lasted about 10k policy steps, in the next about 20k; `results/carracing-cpu/README.md`). The
    truncated Normal's mean is tanh(m), so once m saturates at that corner its gradient vanishes and the actor
    stays there. On one throttle axis, standing still costs the gas, so that corner does not exist. The env
    itself is unchanged; only the policy's action space is smaller (2 instead of 3 dimensions).
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        _check_car_space(env.action_space, "CarRacingThrottle")
        super().__init__(env)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def action(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != (2,):
            raise ValueError(f"expected an action (steer, throttle) of shape (2,) in [-1, 1], got shape "
                             f"{action.shape}")
        steer, throttle = np.clip(action, -1, 1)
        return np.array([steer, max(throttle, 0.0), max(-throttle, 0.0)], np.float32)


# Config.car_actions -> the wrapper that maps the policy's actions onto CarRacing's (steer, gas, brake).
CAR_WRAPPERS = {"gas_brake": CarRacingActions, "throttle": CarRacingThrottle}


def make_env(name: str, image_size: int = 64, action_repeat: int = 1, time_limit: int = 0, seed: int | None = None,
             pixels: bool = False, car_actions: str = "gas_brake", **kwargs) -> gym.Env:
    """Build a pixel env for Dreamer: uint8 (image_size, image_size, 3) frames, actions in [-1, 1] or discrete.

    `name` is any registered gymnasium id with RGB frames as observations (CarRacing-v3,
    dreamer_tutorial/PointReach-v0, ...); `pixels=True` makes one from an env that observes a state vector
    (CartPole-v1, Pendulum-v1, ...) by observing its rendered frames instead. `kwargs` go to `gym.make` (e.g.
    `continuous=False` for CarRacing, `sparse=True` or `target=(x, y)` for PointReach). `time_limit` > 0
    replaces the env's own episode limit by that many policy steps: gym.make's `max_episode_steps` of
    time_limit x action_repeat frames, and ActionRepeat stops on the truncating frame. (Inside the stack, not on
    top of it, so that `gym.make(env.spec)` rebuilds the same env.) With `seed`, the first reset uses it.
    `car_actions` picks CarRacing's policy actions: "gas_brake" (the env's steer, gas, brake: CarRacingActions)
    or "throttle" (steer and one gas/brake axis: CarRacingThrottle); other envs ignore it.
    """
    if image_size < 16 or action_repeat < 1 or time_limit < 0:
        raise ValueError(f"need image_size >= 16, action_repeat >= 1, time_limit >= 0; got {image_size}, "
                         f"{action_repeat}, {time_limit}")
    if car_actions not in CAR_WRAPPERS:
        raise ValueError(f"car_actions must be one of {', '.join(CAR_WRAPPERS)}, got {car_actions!r}")
    if pixels:
        kwargs["render_mode"] = "rgb_array"
    if time_limit:
        kwargs["max_episode_steps"] = time_limit * action_repeat
    try:
        env = gym.make(name, **kwargs)
    except gym.error.Error as err:
        pixel = ["CarRacing-v3", "dreamer_tutorial/PointReach-v0", "dreamer_tutorial/PointReachDiscrete-v0",
                 "dreamer_tutorial/PointRooms-v0"]
        raise ValueError(f"cannot make env {name!r} ({err}); pixel envs that work out of the box: {pixel}") from err
    if pixels:
        env = gym.wrappers.AddRenderObservation(env, render_only=True)
    if not _is_frame_space(env.observation_space):
        space = env.observation_space
        raise ValueError(f"{name} observes {type(space).__name__} {space.shape} {space.dtype}, but Dreamer needs "
                         f"pixel frames (uint8 H x W x 3): pass pixels=True, which wraps gym.make({name!r}, "
                         f"render_mode='rgb_array') in gymnasium's AddRenderObservation(env, render_only=True)")
    if isinstance(env.action_space, gym.spaces.Box):
        is_car = env.spec is not None and env.spec.id.startswith("CarRacing")
        env = CAR_WRAPPERS[car_actions](env) if is_car else NormalizeActions(env)
    elif not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"Dreamer supports Discrete or 1-D Box actions, {name} has {env.action_space}")
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    env = ResizeObservation(env, image_size)
    if seed is not None:
        env.reset(seed=seed)
    return env
