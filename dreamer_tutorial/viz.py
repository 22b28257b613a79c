"""Pictures of what the agent sees, remembers and dreams: frame grids, open-loop predictions, learning curves,
videos, and the dream viewer (an ipywidgets slider over time, or a static figure without a widget front-end)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch


def _frames(x) -> np.ndarray:
    """uint8 (..., H, W, 3) numpy frames from a tensor or array."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.dtype != np.uint8 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (..., H, W, 3), got {x.dtype} {x.shape}")
    return x


def frame_grid(frames, titles: list[str] | None = None, ncols: int = 8, scale: float = 1.3) -> plt.Figure:
    """Show N frames (N, H, W, 3) in a grid with optional titles."""
    frames = _frames(frames).reshape(-1, *_frames(frames).shape[-3:])
    n = len(frames)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + 0.3 * bool(titles)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(frames[i])
            if titles:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def plot_openloop(truth, model, context: int, index: int = 0, every: int = 1, max_frames: int = 16) -> plt.Figure:
    """Rows: real frames, the model's frames (reconstructions for the first `context` steps, then open-loop
    predictions from the actions alone), and the absolute error. `truth`, `model` are (B, T, H, W, 3) uint8
    (what `WorldModel.open_loop` returns); `index` picks the sequence."""
    truth, model = _frames(truth)[index], _frames(model)[index]
    steps = list(range(0, len(truth), every))[:max_frames]
    error = np.abs(truth.astype(np.int16) - model.astype(np.int16)).astype(np.uint8)
    fig, axes = plt.subplots(3, len(steps), figsize=(1.2 * len(steps), 4), squeeze=False)
    for col, t in enumerate(steps):
        for row, (images, label) in enumerate(((truth, "real"), (model, "model"), (error, "|error|"))):
            ax = axes[row, col]
            ax.imshow(images[t])
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label)
        kind = "recon" if t < context else "dream"
        axes[0, col].set_title(f"t={t}\n{kind}", fontsize=8, color="black" if t < context else "tab:purple")
    fig.suptitle(f"open loop: {context} context frames observed, the rest imagined from actions")
    fig.tight_layout()
    return fig


def dream_viewer(truth, model, context: int, index: int = 0, static: bool | None = None):
    """Slider over time: real frame, model frame (reconstruction, then dream) and error side by side.

    Returns an ipywidgets widget in a Jupyter front-end; with `static=True` (or when ipywidgets or an IPython
    kernel is missing) it returns the static `plot_openloop` figure instead, so the lesson also works in a
    terminal, in nbconvert and in CI.
    """
    truth_np, model_np = _frames(truth)[index], _frames(model)[index]
    if static is None:
        static = not _in_kernel()
    if not static:
        try:
            import ipywidgets as widgets
        except ImportError:
            static = True
    if static:
        return plot_openloop(truth, model, context, index=index, every=max(1, len(truth_np) // 16))

    out = widgets.Output()
    slider = widgets.IntSlider(value=0, min=0, max=len(truth_np) - 1, description="time step",
                               continuous_update=True)

    def show(t: int) -> None:
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
            error = np.abs(truth_np[t].astype(np.int16) - model_np[t].astype(np.int16)).astype(np.uint8)
            kind = "reconstruction" if t < context else f"dream ({t - context + 1} steps ahead)"
            for ax, image, title in zip(axes, (truth_np[t], model_np[t], error), ("real", kind, "|error|")):
                ax.imshow(image)
                ax.set_title(title, fontsize=9)
                ax.axis("off")
            plt.show()

    slider.observe(lambda change: show(change["new"]), names="value")
    show(0)
    return widgets.VBox([slider, out])


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def load_metrics(logdir: str | Path) -> dict[str, np.ndarray]:
    """Columns of `logdir/metrics.csv` as float arrays (NaN where a row did not log that metric)."""
    path = Path(logdir)
    path = path / "metrics.csv" if path.is_dir() else path
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows yet")
    keys = list(rows[0].keys())
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows]) for k in keys}


def plot_curves(logdir: str | Path, keys: list[str], smooth: int = 1, ncols: int = 3) -> plt.Figure:
    """One panel per metric against env steps, from the run's CSV; `smooth` is a moving-average window.

    Evaluation metrics (`eval_*`, a few points each) are drawn as measured, never smoothed; `eval_return` gets a
    band of one `eval_std` when the CSV has it.
    """
    metrics = load_metrics(logdir)
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ValueError(f"metrics {missing} not in the CSV; available: {sorted(metrics)}")
    ncols = min(ncols, len(keys))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ok = ~np.isnan(metrics[key])
        x, y = metrics["step"][ok], metrics[key][ok]
        if smooth > 1 and len(y) >= smooth and not key.startswith("eval_"):
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = x[smooth - 1:]
        ax.plot(x, y, marker="o" if len(y) < 20 else None)
        if key == "eval_return" and "eval_std" in metrics:
            std = metrics["eval_std"][ok]
            ax.fill_between(x, y - std, y + std, alpha=0.2)
        ax.set_title(key)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def save_video(frames, path: str | Path, fps: int = 15) -> Path:
    """Write (T, H, W, 3) uint8 frames to an .mp4 (ffmpeg via imageio) or .gif file; returns the path written.

    Without an ffmpeg backend (imageio-ffmpeg not installed) an .mp4 request falls back to a .gif next to it,
    so a training run never stops because of a missing video codec.
    """
    import imageio.v2 as imageio

    frames = _frames(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".gif":
        # 64x64 frames are upscaled 4x (nearest) so players do not blur them; macro_block_size 16 divides 256.
        big = frames.repeat(4, axis=1).repeat(4, axis=2)
        try:
            imageio.mimsave(path, list(big), fps=fps, macro_block_size=16)
            return path
        except (ImportError, ValueError, RuntimeError):  # no ffmpeg plugin or binary
            path.unlink(missing_ok=True)
            path = path.with_suffix(".gif")
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    return path
