"""results/carracing/reward_shaping.py: the missed-tile penalty follows the tiles the car drove past untouched;
the off-road penalty, the wheels that touch no road tile."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from script_loader import load_script

penalty_script = load_script("results/carracing/reward_shaping.py")


class ScriptedTrack(gym.Env):
    """A 30-tile road; step k touches the tiles listed in touches[k] and pays 1."""

    observation_space = gym.spaces.Box(0, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self, touches):
        self.touches = touches

    def reset(self, *, seed=None, options=None):
        self.road = [SimpleNamespace(road_visited=i < 2) for i in range(30)]  # tiles 0 and 1 at the reset
        self.k = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        for i in self.touches[self.k]:
            self.road[i].road_visited = True
        self.k += 1
        return np.zeros(1, np.float32), 1.0, False, self.k == len(self.touches), {}


def rewards(touches, penalty=10.0):
    env = penalty_script.MissedTilePenalty(ScriptedTrack(touches), penalty)
    env.reset()
    return [env.step(np.zeros(1))[1] for _ in touches]


def test_a_tile_driven_past_costs_the_penalty_once_the_car_is_three_tiles_beyond_it():
    # tile 4 is skipped: it counts as missed when the car reaches tile 7 (BEHIND = 3), once
    assert rewards([[2], [3], [5], [6], [7], [8]]) == [1, 1, 1, 1, -9, 1]


def test_touching_a_missed_tile_later_gives_the_penalty_back():
    assert rewards([[2, 3], [5, 6, 7], [4], [8]]) == [1, -9, 11, 1]


@pytest.mark.parametrize("touches", [[[29], [28], [27]],  # turned round at the start: backwards is not progress
                                     [[2], [20], [21]]])  # a jump across the grass further than AHEAD tiles
def test_touches_that_are_not_forward_progress_cost_nothing(touches):
    assert rewards(touches) == [1, 1, 1]


def test_the_command_line_asks_for_steps_or_check(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        penalty_script.main([str(tmp_path)])
    assert stop.value.code == 2
    assert "expected --steps N (continue the run), --preset P (start one) or --check N" in capsys.readouterr().err


def test_a_new_run_needs_a_known_preset_and_an_empty_logdir(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        penalty_script.main([str(tmp_path), "--preset", "nonesuch"])
    assert stop.value.code == 2
    assert "unknown preset 'nonesuch'" in capsys.readouterr().err
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"a run")
    with pytest.raises(SystemExit) as stop:
        penalty_script.main([str(tmp_path), "--preset", "carracing_cpu_80k"])
    assert "already holds a run: continue it without --preset" in capsys.readouterr().err


@pytest.mark.parametrize("options", [["--steps", "90000"], ["--check", "2"]])
def test_a_logdir_without_a_run_is_one_line(tmp_path, capsys, options):
    with pytest.raises(SystemExit) as stop:
        penalty_script.main([str(tmp_path), *options])
    assert stop.value.code == 2
    assert f"no checkpoint in {tmp_path / 'checkpoints'}" in capsys.readouterr().err


class ScriptedWheels(gym.Env):
    """A car whose four wheels touch, after step k, the number of road tiles listed in tiles[k]; pays 1."""

    observation_space = gym.spaces.Box(0, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self, tiles):
        self.tiles, self.car = tiles, SimpleNamespace(wheels=[SimpleNamespace(tiles=set()) for _ in range(4)])

    def reset(self, *, seed=None, options=None):
        self.k = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        for wheel, count in zip(self.car.wheels, self.tiles[self.k]):
            wheel.tiles = set(range(count))
        self.k += 1
        return np.zeros(1, np.float32), 1.0, False, self.k == len(self.tiles), {}


def test_off_road_costs_a_quarter_of_the_penalty_per_wheel_on_no_road_tile():
    env = penalty_script.OffRoadPenalty(ScriptedWheels([[1, 1, 1, 1], [2, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]), 2.0)
    env.reset()
    assert [env.step(np.zeros(1))[1] for _ in range(4)] == [1.0, 0.5, -0.5, -1.0]


def test_off_road_on_the_real_track_charges_nothing_on_the_road_and_the_whole_penalty_on_the_grass():
    plain, shaped = gym.make("CarRacing-v3"), penalty_script.OffRoadPenalty(gym.make("CarRacing-v3"), 1.5)
    plain.reset(seed=5)
    shaped.reset(seed=5)
    gaps = []
    for t in range(120):  # 20 frames straight down the road, then full left lock onto the grass
        action = np.array([0.0, 0.3, 0.0]) if t < 20 else np.array([-1.0, 0.6, 0.0])
        gaps.append(plain.step(action)[1] - shaped.step(action)[1])
    assert gaps[:20] == [0.0] * 20
    assert gaps[-20:] == pytest.approx([1.5] * 20)
