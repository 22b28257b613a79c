"""Support for the lessons: running independent experiments in parallel, showing the committed full-run results,
and the per-run functions of the lessons' multi-seed experiments (module-level, so worker processes can import them).

`parallel_map` runs one job per process in full mode (seeds and variants of an experiment side by side);
`show_full_run("03")` displays what `results/lessons/run_full.py` saved from a lesson's full-mode run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .config import Config, quick_mode

RUN_FULL_COMMAND = "python results/lessons/run_full.py"


def _single_thread() -> None:
    torch.set_num_threads(1)


def parallel_map(fn, jobs, workers: int | None = None) -> list:
    """`[fn(*job) for job in jobs]`, in order. In full mode, with more than one job and more than one core, the jobs
    run in separate processes (spawn context, so CUDA works in them; one torch thread each). `fn` must be importable
    by the workers: a module-level function of the package, not one defined in a notebook."""
    jobs = [tuple(job) for job in jobs]
    module = getattr(fn, "__module__", None)
    if module in (None, "__main__") or "<locals>" in getattr(fn, "__qualname__", "<locals>"):
        raise ValueError(f"parallel_map needs a module-level function of the package (e.g. "
                         f"dreamer_tutorial.lessons.kl_balance_run) that worker processes can import; got "
                         f"{getattr(fn, '__qualname__', fn)!r} from module {module!r} (defined in a notebook?)")
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if quick_mode() or len(jobs) <= 1 or workers <= 1 or (os.cpu_count() or 1) <= 1:
        return [fn(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool:
        return list(pool.map(fn, *zip(*jobs)))


def results_root() -> Path:
    """The repository's `results/` folder (the environment variable DREAMER_RESULTS overrides it)."""
    return Path(os.environ.get("DREAMER_RESULTS") or Path(__file__).resolve().parents[1] / "results")


def show_full_run(lesson: str, names: list[str] | None = None) -> None:
    """Display the committed full-mode results of a lesson: one line of facts from `run.json` (hardware, wall
    time, date, command), then each output `NAME.png` (an image) and `NAME.txt` (printed), in the saved order."""
    from IPython.display import Image, display

    folder = results_root() / "lessons" / lesson
    if not (folder / "run.json").exists():
        print(f"No full-run results in {folder} yet: `{RUN_FULL_COMMAND} {lesson}` makes them.")
        return
    run = json.loads((folder / "run.json").read_text())
    hw = run.get("hardware", {})
    print(f"Full run of {run.get('lesson', lesson)} on {hw.get('gpu', 'no GPU')} ({hw.get('cpu', '?')}, "
          f"{hw.get('cores', '?')} cores, torch {hw.get('torch', '?')}): {run.get('wall_seconds', 0):.0f} s "
          f"wall time on {run.get('date', '?')}, status {run.get('status', '?')}; command: `{run.get('command', '?')}`")
    for name in names or run.get("outputs", []):
        for path in (folder / f"{name}.png", folder / f"{name}.txt"):
            if path.suffix == ".png" and path.exists():
                display(Image(filename=str(path)))
            elif path.exists():
                print(path.read_text().rstrip())


# ---- lesson 03: the KL-balance experiment, one run per (balance, seed) ----

LATENT_METRICS = ("kl", "image_loss", "prior_entropy", "information")


def latent_information(logits: torch.Tensor) -> torch.Tensor:
    """Mutual information between frame and latent, estimated on a batch: sum over the categorical variables of
    H[batch-mean posterior] - mean H[posterior] (nats). `logits` (..., stoch, classes)."""
    probs = logits.softmax(-1).flatten(0, -3)  # (N, stoch, classes)

    def entropy(p):
        return -(p * p.clamp_min(1e-12).log()).sum(-1)

    return (entropy(probs.mean(0)) - entropy(probs).mean(0)).sum()


def random_pointreach_replay(episodes: int, seed: int = 0):
    """A `SequenceReplay` of `episodes` PointReach episodes under the uniform random policy (episode i reset
    with seed `seed + i`, actions from numpy's generator seeded with `seed`)."""
    from .envs import make_env
    from .replay import SequenceReplay

    env = make_env("dreamer_tutorial/PointReach-v0")
    replay = SequenceReplay(20_000, (64, 64, 3), 2)
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        replay.add(obs, np.zeros(2), 0.0, True, False)  # (x_0, no action, no reward, is_first)
        done = False
        while not done:
            action = rng.uniform(-1, 1, 2).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(obs, action, reward, False, terminated)
            done = terminated or truncated
    env.close()
    return replay


def kl_balance_config(balance: float, quick: bool, device: str = "cpu") -> Config:
    """Lesson 03's world model: the `debug` preset in quick mode, else `small` with the paper's 32 x 32 latents;
    free nats 0 so that the balance alone decides where the KL gradient goes."""
    if quick:
        return Config.preset("debug", kl_balance=balance, kl_free=0.0, device=device)
    return Config.preset("small", stoch=32, classes=32, kl_balance=balance, kl_free=0.0, device=device)


def kl_balance_run(balance: float, seed: int, updates: int, device: str = "cpu", episodes: int = 200,
                   quick: bool = False) -> tuple[np.ndarray, dict]:
    """Train one world model with KL balance `balance` on random PointReach data (the same data and batches for
    every run; `seed` sets the initial weights and the latent samples). Returns the per-update metrics
    (updates, 4) in the order of LATENT_METRICS and the trained weights (a CPU state dict)."""
    from .world_model import WorldModel

    replay = random_pointreach_replay(episodes)
    torch.manual_seed(seed)
    config = kl_balance_config(balance, quick, device)
    wm = WorldModel(config, action_dim=2).to(device)
    opt = torch.optim.Adam(wm.parameters(), lr=config.model_lr, eps=config.adam_eps)
    replay.rng = np.random.default_rng(1)  # every run sees the same batches
    rows = []
    for _ in range(updates):
        loss, post, metrics = wm.loss(replay.sample(config.batch_size, config.batch_length, device))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), config.grad_clip)
        opt.step()
        metrics["information"] = latent_information(post.logits.detach())
        rows.append(torch.stack([metrics[k].detach().float() for k in LATENT_METRICS]))
    history = torch.stack(rows).cpu().numpy()  # one device sync at the end, not one per update
    return history, {k: v.cpu() for k, v in wm.state_dict().items()}


# ---- lesson 07: training runs on PointReach, one per seed, and the random policy's return ----

def train_pointreach(config: Config, target: tuple[float, float] | None = None) -> dict:
    """`train(config)` on `config.env` (a PointReach variant) built with the given fixed `target` (None: a random
    target per episode); returns train()'s final metrics."""
    from .envs import make_env
    from .train import train

    return train(config, env_fn=lambda: make_env(config.env, target=target), progress=False)


def random_policy_returns(env, episodes: int, seed: int = 100) -> np.ndarray:
    """Returns of `episodes` episodes of the uniformly random policy, env seeds `seed`, `seed + 1`, ... (the
    baseline that `checks.check_learning` compares a trained agent with)."""
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        env.action_space.seed(int(rng.integers(2**31)))
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return np.array(returns)
