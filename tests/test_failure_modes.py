"""results/carracing/failure_modes.py: the car's trace in a real CarRacing-v3 episode, and the verdicts."""

import numpy as np
import pytest
from script_loader import load_script

from dreamer_tutorial import Config, Dreamer, make_env
from dreamer_tutorial.evaluate import evaluate_episodes
from dreamer_tutorial.train import env_from_config

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
    # the time ran out with no untouched tile ahead of the car: it drove the lap round but missed tiles on the way
    assert failure_modes.verdict(record(tiles, [True] * 150, [False] * 150), "time", tiles_ahead=0) == "missed tiles"
    assert failure_modes.verdict(record(tiles, [True] * 150, [False] * 150), "time", tiles_ahead=3) == \
        "stalled on the road"
    # ... unless it drove the lap the wrong way round
    assert failure_modes.verdict(record(tiles, [True] * 150, [True] * 150), "time", tiles_ahead=0) == \
        "turned around"


def test_untouched_tiles_behind_the_farthest_touched_one_were_missed_those_beyond_it_not_reached():
    assert failure_modes.missed_and_ahead([5, 9], total=10) == ([5], 1)  # farthest touched: 8
    assert failure_modes.missed_and_ahead([7, 3, 4], total=10) == ([3, 4, 7], 0)
    assert failure_modes.missed_and_ahead([], total=10) == ([], 0)
    assert failure_modes.stretches([3, 4, 7]) == 2 and failure_modes.stretches([]) == 0


def test_turning_is_the_heading_change_over_the_tiles_around_each_one():
    beta = np.zeros(20)
    beta[10:] = 0.5  # a straight track that bends by 0.5 rad between points 9 and 10 (and back, closing it)
    bend = failure_modes.turning(beta)
    np.testing.assert_allclose(bend[[7, 8, 9, 10, 11]], 0.5)  # the 5 tiles around 9 see the bend
    np.testing.assert_allclose(bend[[3, 4, 5, 6, 12, 13, 14, 15]], 0.0, atol=1e-12)
    # headings wrap: a change from just below pi to just above -pi is a small turn, not a full one
    wrapped = failure_modes.turning(np.array([3.1, -3.1, -3.1, -3.1, -3.1, -3.1]), window=1)
    np.testing.assert_allclose(wrapped[0], 2 * np.pi - 6.2, atol=1e-9)


def test_longest_run_of_true():
    assert failure_modes.longest_run(np.array([1, 1, 0, 1, 1, 1, 0], bool)) == 3
    assert failure_modes.longest_run(np.zeros(4, bool)) == 0


def test_the_summary_counts_verdicts_and_prices_the_missed_tiles():
    missed = {"missed": 3, "cuts": 2, "missed_sharp": 2, "missed_turning": [0.5, 0.7, 0.1], "track_turning": [0.0] * 7}
    clean = {"missed": 0, "cuts": 0, "missed_sharp": 0, "missed_turning": [], "track_turning": [0.0, 0.2, 0.4]}
    rows = [{"verdict": "missed tiles", "return": 880.0, "lap_if_touched": 930.0, **missed},
            {"verdict": "missed tiles", "return": 870.0, "lap_if_touched": 920.0, **missed},
            {"verdict": "lap finished", "return": 935.0, "lap_if_touched": 935.0, **clean},
            # a car driving the lap backwards "misses" the tiles it never reached from the front: left out
            {"verdict": "turned around", "return": 600.0, "lap_if_touched": 700.0, **missed, "missed": 90}]
    lines = failure_modes.summary(rows).splitlines()
    assert lines[2] == "| missed tiles | 2 | 875.0 | 925.0 |"
    assert lines[3] == "| lap finished | 1 | 935.0 |  |"
    assert 'In the 2 "missed tiles" episodes: 6 tiles driven past untouched, in 4 runs' in lines[6]
    assert "; 67% of them in their track's sharpest quarter" in lines[6]
    assert "missed tile: 0.50 rad (around any tile of these tracks: 0.00 rad)" in lines[6]


def test_a_lap_ends_only_once_every_tile_is_touched_since_the_reset_touches_tile_0():
    """The fact the "missed tiles" verdict rests on: CarRacing-v3's early lap end (95 % of the tiles, then tile 0)
    only fires on the first touch of tile 0, and the car already touches it at the reset."""
    env = make_env("CarRacing-v3", 64, 2, 500, car_actions="throttle")
    env.reset(seed=0)
    track = env.unwrapped
    assert track.road[0].road_visited and track.tile_visited_count >= 1
    env.close()


def test_a_missing_table_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        failure_modes.main(["some_run", "--table", str(tmp_path / "eval_episodes.csv")])
    assert stop.value.code == 2
    assert "expected an eval_episodes.csv of report.py; there is none" in capsys.readouterr().err


def test_a_trace_replays_the_evaluation_episode_on_the_posteriors_mode_too():
    """`--latent_mode` replays a `--latent_mode` table's episode: same return as `evaluate_episodes`, and the flag
    reaches the agent's policy (an untrained agent of the recipe's sizes, episodes of 40 policy steps)."""
    config = Config.preset("carracing_cpu", time_limit=40)
    env = env_from_config(config)
    agent = Dreamer(config, env.observation_space, env.action_space)
    env.close()
    modes, policy = [], agent.policy

    def spy(*args, **kwargs):
        modes.append(kwargs.get("latent_mode", False))
        return policy(*args, **kwargs)

    agent.policy = spy
    for latent_mode in (False, True):
        table = evaluate_episodes(agent, config, 1, seed=777003, num_envs=1, latent_mode=latent_mode)
        modes.clear()
        [(seed, ret, trace)] = list(failure_modes.traces(agent, config, [777003], latent_mode))
        assert (seed, ret) == (777003, table["returns"][0])
        assert len(trace.record["tiles"]) == 40 and set(modes) == {latent_mode}
