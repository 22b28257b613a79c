"""results/carracing/failures.py: how many tracks failed for k of several agents, against independent failures."""

import numpy as np
import pytest
from script_loader import load_script

failures = load_script("results/carracing/failures.py")


def test_overlap_counts_tracks_by_how_many_agents_failed_them_and_the_independent_expectation():
    # agent a fails tracks 10 and 11 (rate 1/2), agent b track 11 (rate 1/4); 12 and 13 pass for both
    a = {10: 100.0, 11: 650.0, 12: 900.0, 13: 880.0}
    b = {10: 820.0, 11: 300.0, 12: 910.0, 13: 700.0}  # 700 is not below 700
    observed, expected, per_seed = failures.overlap([a, b], below=700)
    assert observed.tolist() == [2, 1, 1]
    # independent: P(0) = 1/2 * 3/4, P(1) = 1/2 * 3/4 + 1/2 * 1/4, P(2) = 1/2 * 1/4; times 4 tracks
    np.testing.assert_allclose(expected, [1.5, 2.0, 0.5])
    assert per_seed == {10: 1, 11: 2, 12: 0, 13: 0}


def test_tables_of_other_tracks_are_refused():
    with pytest.raises(ValueError, match="same env seeds"):
        failures.overlap([{1: 0.0, 2: 0.0}, {1: 0.0, 3: 0.0}], below=700)


def test_the_cli_names_a_folder_without_a_table(tmp_path, capsys):
    with pytest.raises(SystemExit):
        failures.main([str(tmp_path)])
    assert "expected an eval_episodes.csv" in capsys.readouterr().err


def test_a_closed_track_turns_by_two_pi_net_so_its_total_turning_is_at_least_that():
    turning = failures.track_turning([0, 1])
    assert turning.shape == (2,) and (turning >= 2 * np.pi).all() and turning[0] != turning[1]


def test_by_turning_splits_the_tracks_into_thirds_by_turning():
    # six tracks; the two most turning ones fail for both agents, nothing else fails
    turning = np.array([7.0, 20.0, 8.0, 19.0, 9.0, 10.0])
    a = {s: (300.0 if t > 15 else 900.0) for s, t in enumerate(turning)}
    rows = failures.by_turning([a, dict(a)], turning, below=700)
    assert rows[2] == "| least turning third (2) | 7.0-8.0 | 0.0% | 900.0 |"
    assert rows[3] == "| middle third (2) | 9.0-10.0 | 0.0% | 900.0 |"
    assert rows[4] == "| most turning third (2) | 19.0-20.0 | 100.0% | 300.0 |"


def test_read_returns_takes_the_table_or_its_folder(tmp_path):
    (tmp_path / "eval_episodes.csv").write_text("episode,seed,return\n0,777000,912.5\n1,777001,640.0\n")
    expected = {777000: 912.5, 777001: 640.0}
    assert failures.read_returns(tmp_path) == expected
    assert failures.read_returns(tmp_path / "eval_episodes.csv") == expected
