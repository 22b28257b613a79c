"""Why did an episode fail? Replay a run's episodes and trace what the car did, policy step by policy step.

    python results/carracing/failure_modes.py RUN_LOGDIR --table RESULT_DIR/eval_episodes.csv [--below 800] [--best]
                                              [--jobs 2] [--latent_mode]
    python results/carracing/failure_modes.py RUN_LOGDIR --seeds 777055 777061 [--best] [--latent_mode]

Replays the greedy policy on each env seed (those of the table's episodes below `--below`, or `--seeds`) with one
env, as `dreamer_tutorial.evaluate` does for a single episode, so each replay is the table's episode (with
`--latent_mode`, the agent acting on the posterior's most likely latent state: a table of `--latent_mode`). A wrapper
reads the car from the env after every policy step: tiles visited so far, whether any wheel touches the road, the
speed, and whether the car moves against the track's direction (its velocity against the direction of the nearest
track point, at more than 3 m/s, on the road). One Markdown row per episode: return, how it ended, tiles visited,
steps with every wheel on the grass and the longest such stretch, steps on the road the wrong way, the step of the
last new tile, the untouched tiles the car drove past and those it never reached, and a verdict (`verdict`: missed
tiles, lost on the grass, turned around, stalled on the road, slow). Then how many episodes got each verdict and
their mean return.

CarRacing-v3 ends a lap early only when every tile has been touched: its lap rule (95 % of the tiles, then tile 0)
fires on the first touch of tile 0, and the car touches tiles 0 and 1 at the reset. An episode that drives the lap
but drives past a tile without touching it (runs wide or cuts a corner) therefore runs on to the time limit at -0.1
a frame. For those episodes the summary also gives the return the lap would have had with its missed tiles touched
on the way, 1000 - 0.1 x (frames up to the last new tile): what the missed tiles cost. `--below 2000` replays every
episode of the table; `--jobs` splits the seeds over processes of one torch thread each.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from failures import read_returns

from dreamer_tutorial.train import env_from_config, evaluate, load_agent, make_vector_env

PLAYFIELD = 2000 / 6.0  # gymnasium's CarRacing: an episode ends when the car leaves the square |x|, |y| <= this


class CarTrace(gym.Wrapper):
    """Records the car after every step (outermost, so one record per policy step): tiles, on_road, wrong_way,
    speed, position; `ended` is "lap", "playfield" or "time" once the episode is over, and `unvisited` the track
    indices of the tiles never touched."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        track = np.array(self.env.unwrapped.track)  # (alpha, beta, x, y) per track point
        self.points, self.turning = track[:, 2:4], turning(track[:, 1])
        self.record = {"tiles": [], "on_road": [], "wrong_way": [], "speed": [], "position": []}
        self.ended, self.unvisited = None, []
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        car = self.env.unwrapped.car
        position, velocity = np.array(car.hull.position), np.array(car.hull.linearVelocity)
        nearest = int(np.argmin(((self.points - position) ** 2).sum(1)))
        direction = self.points[(nearest + 1) % len(self.points)] - self.points[nearest]
        on_road = any(wheel.tiles for wheel in car.wheels)
        speed = float(np.linalg.norm(velocity))
        self.record["tiles"].append(self.env.unwrapped.tile_visited_count)
        self.record["on_road"].append(on_road)
        self.record["wrong_way"].append(on_road and speed > 3 and float(velocity @ direction) < 0)
        self.record["speed"].append(speed)
        self.record["position"].append(position)
        if terminated or truncated:
            self.ended = ("playfield" if np.abs(position).max() > PLAYFIELD else "lap") if terminated else "time"
            self.unvisited = [i for i, tile in enumerate(self.env.unwrapped.road) if not tile.road_visited]
        return obs, reward, terminated, truncated, info


def last_new_tile(tiles: np.ndarray) -> int:
    """The policy step (from 1) at which the last new tile was visited; 0 if none was."""
    gained = np.flatnonzero(np.diff(tiles, prepend=0) > 0)
    return int(gained[-1]) + 1 if len(gained) else 0


def turning(beta: np.ndarray, window: int = 5) -> np.ndarray:
    """How sharply the track bends at each tile: the heading change over the `window` tiles centred on it, in
    radians, whatever its sign (beta: the track's heading at each point, in driving order, closed)."""
    change = np.angle(np.exp(1j * (np.roll(beta, -1) - beta)))  # from each point to the next, wrapped to (-pi, pi]
    half = window // 2
    padded = np.concatenate([change[-half:], change, change[:half]])
    return np.abs(np.convolve(padded, np.ones(window), "valid"))


def missed_and_ahead(unvisited: list[int], total: int) -> tuple[list[int], int]:
    """Of a track's untouched tiles (indices in driving order; the car starts on tile 0), those behind the farthest
    tile it touched (missed: it drove past them) and how many lie beyond it (not reached)."""
    untouched = set(unvisited)
    front = max((i for i in range(total) if i not in untouched), default=0)
    return sorted(i for i in untouched if i < front), sum(i > front for i in untouched)


def stretches(indices: list[int]) -> int:
    """How many runs of consecutive numbers a sorted list holds (missed tiles: in how many places the car left the
    road)."""
    return sum(1 for k, i in enumerate(indices) if k == 0 or i != indices[k - 1] + 1)


def verdict(record: dict[str, list], ended: str, tiles_ahead: int | None = None) -> str:
    """What went wrong: "lap finished" or "left the playfield" when the episode ended so; "missed tiles" when the
    time ran out with no untouched tile ahead of the car (`tiles_ahead` 0: it drove the lap, but a lap only ends
    once every tile is touched) and the car mostly drove the right way; "lost on the grass" when no new tile came in
    the last 25 steps or more and the car spent most of them off the road; "turned around" when it drove on the road
    against the track's direction for a fifth of the episode or more (after a spin it drives the lap backwards:
    tiles on the far side still pay, the ones it passed again do not, so the time runs out); "stalled on the road"
    when no new tile came in the last 25 steps or more otherwise; else "slow" (tiles were still coming when the time
    ran out)."""
    if ended == "lap":
        return "lap finished"
    if ended == "playfield":
        return "left the playfield"
    if tiles_ahead == 0 and np.mean(record["wrong_way"]) < 0.2:
        return "missed tiles"
    steps, last = len(record["tiles"]), last_new_tile(np.array(record["tiles"]))
    stuck = steps - last >= 25
    if stuck and 1 - np.mean(record["on_road"][last:]) > 0.5:
        return "lost on the grass"
    if np.mean(record["wrong_way"]) >= 0.2:
        return "turned around"
    return "stalled on the road" if stuck else "slow"


def longest_run(flags: np.ndarray) -> int:
    """The longest stretch of consecutive True values."""
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def traces(agent, config, seeds: list[int], latent_mode: bool = False):
    """Replay each seed's greedy episode (one env, torch seeded as evaluate_episodes seeds it; on the posterior's
    mode with `latent_mode`) with `CarTrace`: yields (seed, return, the CarTrace wrapper after the episode)."""
    envs = make_vector_env(config, env_fn=lambda: CarTrace(env_from_config(config)), num_envs=1)
    try:
        for seed in seeds:
            torch.manual_seed(seed)
            stats = evaluate(agent, envs, 1, seed=seed, latent_mode=latent_mode)
            yield seed, stats["returns"][0], envs.envs[0]
    finally:
        envs.close()


def trace_episodes(logdir: str, seeds: list[int], best: bool = False, threads: int | None = None,
                   latent_mode: bool = False) -> list[dict]:
    """One row per seed's greedy episode: how it ended, its tiles, where it left the road, the verdict."""
    if threads:
        torch.set_num_threads(threads)
    agent, config = load_agent(logdir, best=best)
    rows = []
    for seed, ret, trace in traces(agent, config, seeds, latent_mode):
        off = ~np.array(trace.record["on_road"])
        tiles = np.array(trace.record["tiles"])
        last = last_new_tile(tiles)
        missed, ahead = missed_and_ahead(trace.unvisited, len(trace.points))
        sharp = trace.turning > np.quantile(trace.turning, 0.75)  # the track's sharpest quarter of tiles
        rows.append({"seed": seed, "return": ret, "ended": trace.ended,
                     "tiles": f"{tiles[-1]}/{len(trace.points)}", "off_road": int(off.sum()),
                     "longest_off_road": longest_run(off), "wrong_way": int(np.sum(trace.record["wrong_way"])),
                     "last_new_tile": last, "lap_if_touched": 1000 - 0.1 * config.action_repeat * last,
                     "missed": len(missed), "cuts": stretches(missed), "missed_sharp": int(sharp[missed].sum()),
                     "missed_turning": trace.turning[missed].tolist(), "track_turning": trace.turning.tolist(),
                     "ahead": ahead, "steps": len(tiles),
                     "verdict": verdict(trace.record, trace.ended, ahead)})
    return rows


def summary(rows: list[dict]) -> str:
    """Per verdict: episodes and mean return; for "missed tiles" also the mean lap return had they been touched.
    Then where the missed tiles lie: how many, in how many runs (corners cut), and how sharply the track bends
    there."""
    lines = ["| verdict | episodes | mean return | with the missed tiles touched |", "| --- | --- | --- | --- |"]
    for name in sorted({r["verdict"] for r in rows}, key=lambda v: (-sum(r["verdict"] == v for r in rows), v)):
        group = [r for r in rows if r["verdict"] == name]
        touched = f"{np.mean([r['lap_if_touched'] for r in group]):.1f}" if name == "missed tiles" else ""
        lines.append(f"| {name} | {len(group)} | {np.mean([r['return'] for r in group]):.1f} | {touched} |")
    laps = [r for r in rows if r["verdict"] == "missed tiles"]  # laps driven the right way round
    missed = sum(r["missed"] for r in laps)
    if missed:
        sharp = sum(r["missed_sharp"] for r in laps) / missed
        lines.append(f"\nIn the {len(laps)} \"missed tiles\" episodes: {missed} tiles driven past untouched, in "
                     f"{sum(r['cuts'] for r in laps)} runs of consecutive tiles; {sharp:.0%} of them in their track's "
                     "sharpest quarter of tiles. Median heading change over the 5 tiles around a missed tile: "
                     f"{np.median([t for r in laps for t in r['missed_turning']]):.2f} rad (around any tile of these "
                     f"tracks: {np.median([t for r in laps for t in r['track_turning']]):.2f} rad).")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("--table", help="an eval_episodes.csv of report.py: replay its episodes below --below")
    parser.add_argument("--below", type=float, default=800.0)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="env seeds to replay")
    parser.add_argument("--best", action="store_true", help="the run's best.pt, not latest.pt")
    parser.add_argument("--jobs", type=int, default=1, help="processes (one torch thread each when more than 1)")
    parser.add_argument("--latent_mode", action="store_true",
                        help="act on the posterior's most likely latent state (to replay a --latent_mode table)")
    args = parser.parse_args(argv)
    seeds, table = list(args.seeds), {}
    if args.table:
        if not Path(args.table).is_file():
            parser.error(f"--table {args.table}: expected an eval_episodes.csv of report.py; there is none")
        table = read_returns(args.table)
        seeds += [seed for seed, ret in table.items() if ret < args.below]
    if not seeds:
        parser.error("expected env seeds to replay: --seeds S ... or --table eval_episodes.csv with episodes "
                     "below --below")
    if args.jobs < 1:
        parser.error(f"expected --jobs of at least 1, got {args.jobs}")
    if args.jobs == 1:
        rows = trace_episodes(args.logdir, seeds, args.best, latent_mode=args.latent_mode)
    else:
        chunks = [seeds[i::args.jobs] for i in range(args.jobs)]
        with ProcessPoolExecutor(args.jobs) as pool:
            parts = list(pool.map(trace_episodes, [args.logdir] * args.jobs, chunks, [args.best] * args.jobs,
                                  [1] * args.jobs, [args.latent_mode] * args.jobs))
        rows = sorted((r for part in parts for r in part), key=lambda r: r["seed"])
    print("| env seed | return | ended | tiles | missed (runs) / not reached | steps off road (longest) | wrong way | "
          "last new tile | verdict |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['seed']} | {r['return']:.1f} | {r['ended']} after {r['steps']} | {r['tiles']} | "
              f"{r['missed']} ({r['cuts']}) / {r['ahead']} | {r['off_road']} ({r['longest_off_road']}) | "
              f"{r['wrong_way']} | {r['last_new_tile']} | {r['verdict']} |")
    for r in rows:
        if r["seed"] in table and abs(table[r["seed"]] - r["return"]) > 1e-3:
            print(f"warning: the replay of env seed {r['seed']} scored {r['return']:.1f}, the table "
                  f"{table[r['seed']]:.1f}: not the same episode")
    print("\n" + summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
