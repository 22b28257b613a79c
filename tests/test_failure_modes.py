"""results/carracing/failure_modes.py: the car's trace in a real CarRacing-v3 episode, and the verdicts."""

import numpy as np
import pytest
from script_loader import load_script

from dreamer_tutorial import make_env

failure_modes = load_script("results/carracing/failure_modes.py")
FULL_GAS = np.array([0.0, 1.0], np.float32)  # throttle actions: no steering, full gas


def drive_straight(steps: int, reverse_track: bool = False):
    env = failure_modes.CarTrace(make_env("CarRacing-v3", 64, 2, 500, car_actions="throttle"))
    env.reset(seed=0)
    if reverse_track:
        env.points = env.points[::-1].copy()  # the same drive now runs against the track's direction
    for _ in range(steps):
        env.step(FULL_GAS)
    env.close()
    return env.record


@pytest.fixture(scope="module")
def straight():
    return drive_straight(200)


def test_a_car_at_full_gas_straight_ahead_gains_tiles_then_is_lost_on_the_grass(straight):
    tiles, on_road = np.array(straight["tiles"]), np.array(straight["on_road"])
    assert tiles[30] > tiles[0] > 0 and (np.diff(tiles) >= 0).all()  # tiles only add up
    assert on_road[:20].all() and not on_road[-50:].any()  # it misses the first bend and never comes back
    assert tiles[-1] == tiles[-50]
    assert not any(straight["wrong_way"]) and max(straight["speed"]) > 50
    assert failure_modes.verdict(straight, "time") == "lost on the grass"


def test_driving_against_the_tracks_direction_is_counted_as_wrong_way():
    record = drive_straight(40, reverse_track=True)
    moving = np.array(record["on_road"]) & (np.array(record["speed"]) > 3)
    assert moving.sum() > 30 and record["wrong_way"] == moving.tolist()


def record(tiles, on_road, wrong_way):
    return {"tiles": tiles, "on_road": on_road, "wrong_way": wrong_way, "speed": [10.0] * len(tiles)}


def test_the_verdict_reads_what_happened_after_the_last_new_tile():
    gained = list(range(1, 51))  # a tile every step for 50 steps, then no more for 100 steps
    tiles = gained + [50] * 100
    assert failure_modes.last_new_tile(np.array(tiles)) == 50
    assert failure_modes.verdict(record(tiles, [True] * 50 + [False] * 100, [False] * 150), "time") == \
        "lost on the grass"
    assert failure_modes.verdict(record(tiles, [True] * 150, [False] * 100 + [True] * 50), "time") == \
        "turned around"
    # still earning tiles to the end, but backwards for 40 of 60 steps: the lap is driven the wrong way round
    assert failure_modes.verdict(record(gained + [50] * 10, [True] * 60, [False] * 20 + [True] * 40), "time") == \
        "turned around"
    assert failure_modes.verdict(record(tiles, [True] * 150, [False] * 150), "time") == "stalled on the road"
    assert failure_modes.verdict(record(gained + [50] * 10, [True] * 60, [False] * 60), "time") == "slow"
    assert failure_modes.verdict(record(tiles, [True] * 150, [False] * 150), "lap") == "lap finished"
    assert failure_modes.verdict(record(tiles, [True] * 150, [False] * 150), "playfield") == "left the playfield"


def test_longest_run_of_true():
    assert failure_modes.longest_run(np.array([1, 1, 0, 1, 1, 1, 0], bool)) == 3
    assert failure_modes.longest_run(np.zeros(4, bool)) == 0
