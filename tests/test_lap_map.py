"""results/carracing/lap_map.py: which tiles it paints as missed, and that it paints every tile once."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from script_loader import load_script  # noqa: E402

lap_map = load_script("results/carracing/lap_map.py")


def test_untouched_tiles_behind_the_farthest_touched_one_are_missed_the_rest_not_reached():
    assert lap_map.tile_states([2, 3, 8, 9], total=10) == ["touched", "touched", "missed", "missed", "touched",
                                                          "touched", "touched", "touched", "not reached",
                                                          "not reached"]


def test_draw_paints_each_tile_once_in_its_state_colour():
    tiles = [[(i, 0), (i + 1, 0), (i + 1, 1), (i, 1)] for i in range(6)]
    states = lap_map.tile_states([1, 5], total=6)
    fig, ax = plt.subplots()
    lap_map.draw(ax, tiles, states, np.array([[0.5, 0.5], [5.5, 0.5]]), "test")
    colours = [p.get_facecolor() for p in ax.patches]
    assert len(colours) == 6
    assert colours[1] == to_rgba(lap_map.COLORS["missed"]) and colours[5] == to_rgba(lap_map.COLORS["not reached"])
    assert colours[0] == to_rgba(lap_map.COLORS["touched"])
    plt.close(fig)
