"""Where did the car go? One greedy episode drawn on its track: the tiles it touched, the tiles it drove past
without touching (missed), the tiles it never reached, and its path.

    python results/carracing/lap_map.py RUN_LOGDIR --seed 777000 --out lap_map.png [--best]

Replays the episode as `failure_modes.py` does (one env, torch seeded with the env seed, so it is the episode of
the evaluation table) and draws the env's road polygons from above: grey where a wheel touched the tile, red where
the car drove past the tile untouched (a missed tile keeps a CarRacing-v3 lap from ending, see failure_modes.py),
light where it never got, the car's path in blue and its start as a dot.
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from failure_modes import missed_and_ahead, traces  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from dreamer_tutorial.train import load_agent  # noqa: E402

COLORS = {"touched": "0.6", "missed": "tab:red", "not reached": "0.9"}


def tile_states(unvisited: list[int], total: int) -> list[str]:
    """Each tile's state in track order: touched, missed (behind the farthest touched tile) or not reached."""
    missed = set(missed_and_ahead(unvisited, total)[0])
    untouched = set(unvisited)
    return ["missed" if i in missed else "not reached" if i in untouched else "touched" for i in range(total)]


def draw(ax, tiles: list, states: list[str], path: np.ndarray, title: str) -> None:
    """tiles: the four corners of each road tile in track order; path: (T, 2) car positions."""
    for corners, state in zip(tiles, states):
        ax.add_patch(Polygon(np.array(corners), closed=True, color=COLORS[state], lw=0))
    ax.plot(path[:, 0], path[:, 1], color="tab:blue", lw=0.8)
    ax.plot(*path[0], "o", color="tab:blue", ms=4)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    ax.legend(handles=[Polygon([[0, 0]], color=c, label=s) for s, c in COLORS.items()], loc="lower left",
              fontsize=7, frameon=False)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("--seed", type=int, nargs="+", required=True, help="env seeds, one panel each")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--best", action="store_true", help="the run's best.pt, not latest.pt")
    args = parser.parse_args(argv)
    agent, config = load_agent(args.logdir, best=args.best)
    fig, axes = plt.subplots(1, len(args.seed), figsize=(4.5 * len(args.seed), 4.5), squeeze=False)
    for ax, (seed, ret, trace) in zip(axes[0], traces(agent, config, args.seed)):
        tiles = [tile.fixtures[0].shape.vertices for tile in trace.env.unwrapped.road]  # corners, track order
        states = tile_states(trace.unvisited, len(tiles))
        draw(ax, tiles, states, np.array(trace.record["position"]),
             f"env seed {seed}: {ret:.1f}, {trace.ended} after {len(trace.record['tiles'])} "
             f"steps,\n{states.count('missed')} tiles missed, {states.count('not reached')} not reached")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
