"""Pictures of what the agent sees, remembers and dreams: frame grids, open-loop predictions, learning curves,
videos, the dream viewer and the actor's dream (ipywidgets with Play and a slider over pre-rendered pictures, or a
static figure without a widget front-end), and the lessons' diagrams (the RSSM step, the imagination timeline,
KL balancing)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .rssm import State


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


# --- the dream viewer ----------------------------------------------------------------------------------------------
# Every picture the viewer can show is rendered once, as PNG bytes, when a sequence is first selected; moving the
# slider (or pressing Play) only swaps the bytes of two `widgets.Image`s, with no matplotlib figure per tick.
DREAM_COLOR, REAL_COLOR = (148, 103, 189), (0, 0, 0)  # tab:purple for dreamed pictures, black for observed ones


def dream_error(truth, model) -> np.ndarray:
    """Mean squared pixel error per step, pixels scaled to [0, 1]: frames (..., T, H, W, 3) -> (..., T)."""
    truth, model = _frames(truth), _frames(model)
    if truth.shape != model.shape:
        raise ValueError(f"truth and model frames must have the same shape, got {truth.shape} and {model.shape}")
    diff = truth.astype(np.float64) / 255 - model.astype(np.float64) / 255
    return (diff ** 2).mean((-3, -2, -1))


def compose_frame(panels, headings: list[str], label: str, color=REAL_COLOR, scale: int = 3, gap: int = 4,
                  band: int = 34) -> np.ndarray:
    """One picture: the uint8 panels (each (H, W, 3)) side by side, each upscaled `scale` times (nearest pixel),
    under a white band of `band` rows that holds `label` (first line, in `color`) and each panel's heading.

    Panel i occupies rows [band, band + H * scale) and columns [x_i, x_i + W * scale) with
    x_i = gap + i * (W * scale + gap); the rest is white.
    """
    from PIL import Image, ImageDraw, ImageFont

    panels = [_frames(p) for p in panels]
    if len(panels) != len(headings) or any(p.shape != panels[0].shape or p.ndim != 3 for p in panels):
        raise ValueError(f"compose_frame expects panels of one shape (H, W, 3) and one heading each, got shapes "
                         f"{[p.shape for p in panels]} and {len(headings)} headings")
    h, w = panels[0].shape[0] * scale, panels[0].shape[1] * scale
    canvas = np.full((band + h + gap, gap + len(panels) * (w + gap), 3), 255, np.uint8)
    for i, panel in enumerate(panels):
        x = gap + i * (w + gap)
        canvas[band:band + h, x:x + w] = panel.repeat(scale, 0).repeat(scale, 1)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    draw.text((gap, 2), label, fill=tuple(color), font=font)
    for i, heading in enumerate(headings):
        draw.text((gap + i * (w + gap) + w / 2, band - 2), heading, fill=(60, 60, 60), font=font, anchor="md")
    return np.asarray(image)


def curve_frames(series: list[tuple[str, np.ndarray, np.ndarray]], steps: int, mark: float | None = None,
                 mark_label: str = "", xlabel: str = "step") -> np.ndarray:
    """Small curves with a cursor: one panel per `(title, x, y)` series, drawn ONCE with matplotlib, then one copy
    per step t = 0 .. steps - 1 with a red vertical cursor at x = t painted into the pixels. `mark` draws a dashed
    line (e.g. where the dream starts). Returns uint8 (steps, h, w, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 0.45 + 1.1 * len(series)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, x, y) in zip(axes, series):
        ax.plot(x, y, "o-", ms=3, lw=1.2, color="tab:blue")
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlim(-0.5, steps - 0.5)
        if mark is not None:
            ax.axvline(mark, color="tab:purple", ls="--", lw=1)
    if mark is not None and mark_label:
        axes[0].text(mark, 0.95, f" {mark_label}", transform=axes[0].get_xaxis_transform(), color="tab:purple",
                     fontsize=7, va="top")
    axes[-1].set_xlabel(xlabel, fontsize=8)
    fig.tight_layout(pad=0.4)
    fig.canvas.draw()
    base = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    height = base.shape[0]
    out = np.repeat(base[None], steps, 0)
    for ax in axes:
        top, bottom = height - int(ax.bbox.y1), height - int(ax.bbox.y0)
        for t in range(steps):
            col = int(round(ax.transData.transform((t, 0))[0]))
            out[t, top:bottom, col - 1:col + 1] = (214, 39, 40)  # tab:red
    return out


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode_png(data: bytes) -> np.ndarray:
    """The RGB pixels of PNG bytes (what the viewer's images hold); for tests and scripts."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def open_loop_frames(truth, model, context: int, index: int = 0, scale: int = 3) -> np.ndarray:
    """The viewer's pictures of sequence `index`: per step, real | model | |error| with the step and whether the
    model's frame is observed (a reconstruction) or dreamed, and how many steps ahead. uint8 (T, h, w, 3)."""
    truth, model = _frames(truth)[index], _frames(model)[index]
    error = np.abs(truth.astype(np.int16) - model.astype(np.int16)).astype(np.uint8)
    frames = []
    for t in range(len(truth)):
        dream = t >= context
        label = f"t = {t}   " + (f"dream, {t - context + 1} steps ahead" if dream else "observed (reconstruction)")
        frames.append(compose_frame([truth[t], model[t], error[t]], ["real", "model", "|error|"], label,
                                    DREAM_COLOR if dream else REAL_COLOR, scale))
    return np.stack(frames)


def dream_viewer(truth, model, context: int, index: int = 0, static: bool | None = None, title: str | None = None,
                 scale: int = 3):
    """Step through an open-loop prediction: the real frame, the model's frame (reconstruction for the first
    `context` steps, then the dream from the actions alone) and their difference, next to the per-step squared
    error with a cursor. `truth`, `model` are (B, T, H, W, 3) uint8 (what `WorldModel.open_loop` returns).

    In a Jupyter kernel it returns an ipywidgets box: a Play button (animates in the browser, 150 ms per step),
    a step slider, a sequence selector (which of the B sequences; `index` is the first one shown), the frame and
    the error curve. All pictures of a sequence are rendered once, as PNGs, when it is first shown. With
    `static=True` (or without ipywidgets or a kernel) it returns the static `plot_openloop` figure instead, so the
    lesson also works in a terminal, in nbconvert and in CI.
    """
    truth_np, model_np = _frames(truth), _frames(model)
    if truth_np.shape != model_np.shape or truth_np.ndim != 5:
        raise ValueError(f"dream_viewer expects truth and model frames (B, T, H, W, 3) of one shape, got "
                         f"{truth_np.shape} and {model_np.shape}")
    batch, steps = truth_np.shape[:2]
    if not (0 <= index < batch and 0 <= context <= steps):
        raise ValueError(f"dream_viewer expects 0 <= index < {batch} and 0 <= context <= {steps}, got index={index}, "
                         f"context={context}")
    if _use_static(static):
        fig = plot_openloop(truth_np, model_np, context, index=index, every=max(1, steps // 16))
        if title:
            fig.suptitle(title)
        return fig

    def render(seq: int) -> tuple[np.ndarray, np.ndarray]:
        error = dream_error(truth_np[seq], model_np[seq])
        curves = curve_frames([("mean squared pixel error (pixels in [0, 1])", np.arange(steps), error)], steps,
                              mark=context - 0.5, mark_label="dream starts")
        return open_loop_frames(truth_np, model_np, context, seq, scale), curves

    return _viewer(render, steps, batch, index, title)


@torch.no_grad()
def actor_dream(world_model, behavior, start: State, horizon: int) -> dict[str, np.ndarray]:
    """The actor's dream: from posterior states `start` (N, ...) of real frames, the actor picks every action and
    the world model's prior imagines `horizon` steps; no real frame is seen after the start. This is the rollout
    that behaviour learning trains on (`behavior.imagine`, sampled actions), decoded into pictures.

    Returns numpy arrays, batch-major, in the index convention of `behavior.py` (a_t is chosen at s_t and leads
    to s_{t+1}, whose heads give r_{t+1} and d_{t+1}):

        frames   (N, H + 1, h, w, 3) uint8   decoded s_0 .. s_H (s_0: the reconstruction of the real start frame)
        reward   (N, H)   r_1 .. r_H, the reward head at s_1 .. s_H (tanh(r) when reward_transform="tanh")
        discount (N, H)   d_1 .. d_H, gamma * P(continue) at s_1 .. s_H
        value    (N, H + 1)   the critic's v(s_0) .. v(s_H) (the online critic, not its slow target)
        action   (N, H, A)    a_0 .. a_{H-1}
        feat     (N, H + 1, F)   the imagined features
    """
    if not isinstance(start, State) or start.deter.dim() != 2:
        raise ValueError(f"actor_dream expects start states State(deter (N, D), ...), got "
                         f"{type(start).__name__} {tuple(getattr(start, 'deter', torch.empty(0)).shape)}")
    if horizon < 1:
        raise ValueError(f"actor_dream expects a horizon of at least 1 step, got {horizon}")
    states, actions, _ = behavior.imagine(world_model, start, horizon)
    feat = states.feat
    out = {"reward": world_model.reward(feat[1:]), "discount": world_model.discount(feat[1:]),
           "value": behavior.value(feat), "action": actions, "feat": feat}
    out = {k: v.movedim(0, 1).float().cpu().numpy() for k, v in out.items()}
    return {"frames": world_model.decode(feat).movedim(0, 1).cpu().numpy(), **out}


def actor_dream_viewer(dream: dict[str, np.ndarray], index: int = 0, static: bool | None = None,
                       title: str | None = None, scale: int = 3):
    """Step through the actor's dream (what `actor_dream` returns): the imagined frame next to the predicted
    reward, the critic's value and the predicted discount, with a cursor at the current step. Same widget as
    `dream_viewer` (Play, slider, sequence selector); with `static=True` or without a kernel, a static figure."""
    frames = _frames(dream["frames"])
    reward, value, discount = (np.asarray(dream[k], np.float64) for k in ("reward", "value", "discount"))
    batch, steps = frames.shape[:2]
    if not (reward.shape == discount.shape == (batch, steps - 1) and value.shape == (batch, steps)):
        raise ValueError(f"actor_dream_viewer expects frames (N, H + 1, ...), reward and discount (N, H), value "
                         f"(N, H + 1) as actor_dream returns them, got {frames.shape}, {reward.shape}, "
                         f"{discount.shape}, {value.shape}")
    if not 0 <= index < batch:
        raise ValueError(f"actor_dream_viewer expects 0 <= index < {batch}, got {index}")

    def series(seq: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
        after = np.arange(1, steps)
        return [("predicted reward  r(s_t)", after, reward[seq]),
                ("critic value  v(s_t)", np.arange(steps), value[seq]),
                ("predicted discount  d(s_t)", after, discount[seq])]

    if _use_static(static):
        shown = list(range(0, steps, max(1, -(-steps // 8))))
        fig, axes = plt.subplots(2, len(shown), figsize=(1.3 * len(shown), 4.2), squeeze=False,
                                 gridspec_kw={"height_ratios": [1, 1.2]})
        for col, t in enumerate(shown):
            axes[0, col].imshow(frames[index, t])
            axes[0, col].axis("off")
            axes[0, col].set_title("real start" if t == 0 else f"t={t}", fontsize=8)
        grid = axes[1, 0].get_gridspec()
        for ax in axes[1]:
            ax.remove()
        for i, (name, x, y) in enumerate(series(index)):
            ax = fig.add_subplot(grid[1, i * len(shown) // 3:(i + 1) * len(shown) // 3])
            ax.plot(x, y, "o-", ms=3)
            ax.set_title(name, fontsize=8)
            ax.set_xlabel("imagined step t", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(title or "the actor's dream: imagined frames, rewards, values and discounts")
        fig.tight_layout()
        return fig

    def render(seq: int) -> tuple[np.ndarray, np.ndarray]:
        pictures = np.stack([compose_frame([frames[seq, t]], ["imagined frame"],
                                           "t = 0   real start state" if t == 0 else f"t = {t}   dream",
                                           REAL_COLOR if t == 0 else DREAM_COLOR, scale) for t in range(steps)])
        return pictures, curve_frames(series(seq), steps, mark=0.5, mark_label="imagined from here",
                                      xlabel="imagined step t")

    return _viewer(render, steps, batch, index, title)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _use_static(static: bool | None) -> bool:
    if static is None:
        static = not _in_kernel()
    if not static:
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            static = True
    return static


def _viewer(render, steps: int, sequences: int, index: int, title: str | None):
    """The widget shared by both viewers. `render(seq)` -> (frames, curves), uint8 (steps, h, w, 3) each; they are
    turned into PNG bytes once per sequence. The box keeps its parts as attributes (`slider`, `play`, `link`,
    `sequence`, `frame`, `curve`) and carries the CSS classes that the browser test looks for."""
    import ipywidgets as widgets

    pngs: dict[int, tuple[list[bytes], list[bytes]]] = {}

    def pictures(seq: int) -> tuple[list[bytes], list[bytes]]:
        if seq not in pngs:
            frames, curves = render(seq)
            pngs[seq] = [_png(f) for f in frames], [_png(c) for c in curves]
        return pngs[seq]

    first_frames, first_curves = pictures(index)
    frame = widgets.Image(value=first_frames[0], format="png")
    curve = widgets.Image(value=first_curves[0], format="png")
    slider = widgets.IntSlider(value=0, min=0, max=steps - 1, description="step", continuous_update=True)
    play = widgets.Play(value=0, min=0, max=steps - 1, interval=150, description="play")
    link = widgets.jslink((play, "value"), (slider, "value"))  # Play moves the slider in the browser itself
    sequence = widgets.Dropdown(options=[(f"sequence {i}", i) for i in range(sequences)], value=index,
                                description="sequence", disabled=sequences == 1,
                                layout=widgets.Layout(width="220px"))

    def show(_change=None) -> None:
        frames, curves = pictures(sequence.value)
        frame.value, curve.value = frames[slider.value], curves[slider.value]

    slider.observe(show, names="value")
    sequence.observe(show, names="value")
    for widget, name in ((slider, "slider"), (play, "play"), (frame, "frame"), (sequence, "sequence")):
        widget.add_class(f"dream-viewer-{name}")
    rows = [widgets.HBox([play, slider, sequence]), widgets.HBox([frame, curve])]
    if title:
        rows.insert(0, widgets.HTML(f"<b>{title}</b>"))
    box = widgets.VBox(rows)
    box.add_class("dream-viewer")
    box.slider, box.play, box.link, box.sequence, box.frame, box.curve = slider, play, link, sequence, frame, curve
    return box


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
    so a training run never stops because of a missing video codec. The ffmpeg plugin is named explicitly:
    left to choose, imageio hands an .mp4 to whatever plugin is installed (tifffile on the GPU image), which fails
    on the `fps` argument.
    """
    import importlib.util

    import imageio.v2 as imageio

    frames = _frames(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".gif":
        # 64x64 frames are upscaled 4x (nearest) so players do not blur them; macro_block_size 16 divides 256.
        big = frames.repeat(4, axis=1).repeat(4, axis=2)
        if importlib.util.find_spec("imageio_ffmpeg") is not None:
            try:
                imageio.mimsave(path, list(big), format="FFMPEG", fps=fps, macro_block_size=16)
                return path
            except (ImportError, ValueError, RuntimeError):  # the plugin is there, its ffmpeg binary is not
                path.unlink(missing_ok=True)
        path = path.with_suffix(".gif")
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    return path


# --- diagrams ----------------------------------------------------------------------------------------------------
# Drawn with matplotlib from node and edge lists, so that tests can read the structure back: every arrow is an
# annotation from its source node's centre (`xyann`) to its target's (`xy`), clipped at the node's box.
_NODE_STYLES = {
    "deter": dict(boxstyle="round,pad=0.45", fc="#dbe9f6", ec="tab:blue"),  # deterministic: h
    "stoch": dict(boxstyle="circle,pad=0.3", fc="#fde3c8", ec="tab:orange"),  # stochastic: z
    "input": dict(boxstyle="round,pad=0.35", fc="#eeeeee", ec="gray"),  # actions, frames, embeddings
    "loss": dict(boxstyle="round,pad=0.5", fc="white", ec="black"),
    "off": dict(boxstyle="round,pad=0.35", fc="white", ec="lightgray", ls="--"),
}


def _graph(ax, nodes: dict, edges: list, fontsize: int = 12) -> dict:
    """Draw `nodes` {name: (x, y, label, style)} and `edges` [(source, target, label, arrowprops overrides)] on a
    blank axis; returns the node texts by name."""
    texts = {name: ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, bbox=_NODE_STYLES[style],
                           color="gray" if style == "off" else "black", zorder=3)
             for name, (x, y, label, style) in nodes.items()}
    for source, target, label, props in edges:
        (x0, y0), (x1, y1) = nodes[source][:2], nodes[target][:2]
        arrow = dict(arrowstyle="-|>", color="black", lw=1.3, shrinkA=2, shrinkB=2,
                     patchA=texts[source].get_bbox_patch(), patchB=texts[target].get_bbox_patch()) | props
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=arrow, zorder=2)
        if label:  # at the middle of the arrow (of a quadratic Bezier curve for connectionstyle arc3)
            rad = float(arrow.get("connectionstyle", "arc3,rad=0").split("rad=")[1])
            xm, ym = (x0 + x1) / 2 + rad / 2 * (y1 - y0), (y0 + y1) / 2 - rad / 2 * (x1 - x0)
            ax.text(xm, ym, label, ha="center", va="center", fontsize=fontsize - 3,
                    color=arrow["color"], bbox=dict(fc="white", ec="none", pad=1, alpha=0.9), zorder=4)
    ax.set_axis_off()
    return texts


def rssm_diagram() -> plt.Figure:
    """The RSSM's two ways to take a step. Both advance the recurrent state h_t = f(h_{t-1}, z_{t-1}, a_{t-1});
    *observe* then samples z_t from the posterior q(z_t | h_t, e_t), which sees the frame's embedding e_t (the
    prior's guess is still computed, for the KL), while *imagine* samples it from the prior p(z_t | h_t) alone.
    Boxes: deterministic; circles: stochastic (categorical)."""
    left = {"h0": (0.8, 4.6, "$h_{t-1}$", "deter"), "z0": (0.8, 2.9, "$z_{t-1}$", "stoch"),
            "a0": (0.8, 1.2, "$a_{t-1}$", "input"), "h": (4.0, 2.9, "$h_t$", "deter")}
    into_h = [(n, "h", "", {}) for n in ("h0", "z0", "a0")]
    observe = left | {"z": (7.6, 2.9, "$z_t$", "stoch"), "e": (7.6, 0.6, "$e_t$", "input"),
                      "x": (4.0, 0.6, "frame $x_t$", "input"), "prior": (7.6, 5.1, r"$\hat z_t$", "off")}
    observe_edges = into_h + [("h", "z", "posterior\n$q(z_t \\mid h_t, e_t)$", {}), ("x", "e", "encoder", {}),
                              ("e", "z", "", {}),
                              ("h", "prior", "prior $p(\\hat z_t \\mid h_t)$\n(only for the KL)",
                               {"color": "gray", "ls": "--"})]
    imagine = left | {"prior": (7.6, 2.9, r"$\hat z_t$", "stoch"), "x": (4.0, 0.6, "no frame", "off")}
    imagine_edges = into_h + [("h", "prior", "prior\n$p(\\hat z_t \\mid h_t)$", {})]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    panels = ((observe, observe_edges, "observe (training, acting): the posterior sees the frame",
               "$s_t = (h_t, z_t)$"),
              (imagine, imagine_edges, "imagine (dreaming): the prior guesses $z$ from $h$ alone",
               r"$s_t = (h_t, \hat z_t)$"))
    for ax, (nodes, edges, title, state) in zip(axes, panels):
        _graph(ax, nodes, edges)
        ax.text(2.4, 4.1, "GRU $f$", fontsize=9, color="tab:blue", ha="center")
        ax.text(9.3, 2.9, f"{state}\n→ decoder,\nheads, actor", fontsize=10, ha="center", va="center")
        ax.set_title(title, fontsize=11)
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 5.8)
    fig.suptitle("one RSSM step: $h_t = f(h_{t-1}, z_{t-1}, a_{t-1})$, then $z_t$ from the posterior or the prior",
                 fontsize=12)
    fig.tight_layout()
    return fig


def kl_balance_diagram(balance: float = 0.8) -> plt.Figure:
    """Where KL balancing sends its gradients. Both terms have the value KL[q || p]; the stop-gradient sg blocks
    one path in each, so the prior p receives `balance` times the KL's gradient and the posterior q (and through
    it the encoder) `1 - balance` times. Red arrows: gradients, drawn with widths in that ratio."""
    if not 0 <= balance <= 1:
        raise ValueError(f"balance must lie in [0, 1], got {balance}")
    nodes = {"e": (0.7, 3.0, "$e_t$", "input"), "q": (2.6, 3.0, "posterior\n$q(z_t \\mid h_t, e_t)$", "stoch"),
             "h": (5.0, 3.0, "$h_t$", "deter"), "p": (7.4, 3.0, "prior\n$p(z_t \\mid h_t)$", "stoch"),
             "prior_term": (5.0, 5.4, f"$\\alpha$ KL[sg($q$) ‖ $p$]\n$\\alpha = {balance:g}$", "loss"),
             "post_term": (5.0, 0.6, f"$(1 - \\alpha)$ KL[$q$ ‖ sg($p$)]\n$1 - \\alpha = {1 - balance:g}$", "loss")}
    forward = {"color": "black", "lw": 1.0}
    blocked = {"color": "gray", "lw": 1.0, "ls": ":", "arrowstyle": "-[", "connectionstyle": "arc3,rad=0.4"}
    edges = [("e", "q", "", forward), ("h", "q", "", forward), ("h", "p", "", forward),
             ("q", "prior_term", "", forward), ("p", "prior_term", "", forward),
             ("q", "post_term", "", forward), ("p", "post_term", "", forward),
             ("prior_term", "p", f"gradient × {balance:g}\ntrains the prior",
              {"color": "tab:red", "lw": 8 * balance, "connectionstyle": "arc3,rad=-0.45"}),
             ("post_term", "q", f"gradient × {1 - balance:g}\nregularises the posterior",
              {"color": "tab:red", "lw": 8 * (1 - balance), "connectionstyle": "arc3,rad=-0.45"}),
             ("prior_term", "q", "sg: no gradient", blocked), ("post_term", "p", "sg: no gradient", blocked)]
    fig, ax = plt.subplots(figsize=(9, 5.2))
    _graph(ax, nodes, edges, fontsize=11)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6.2)
    ax.set_title("KL balancing: the same value twice, the gradients split "
                 f"{balance:g} (prior) : {1 - balance:g} (posterior)", fontsize=11)
    fig.tight_layout()
    return fig


def imagination_timeline(horizon: int = 4) -> plt.Figure:
    """Which quantity goes with which imagined state, in the package's index convention (behavior.py): the
    actor picks a_t at s_t, which leads to s_{t+1}; the heads at s_{t+1} give r_{t+1} and d_{t+1} (array index t:
    `reward[t]`, `discount[t]`); v_t = v(s_t) from the slow target critic; the lambda-return R_t (`returns[t]`) is
    credited to a_t and is the target of v(s_t), with R_H = v_H; the weight w_t = c_0 d_1 ... d_t (c_0 = 1 -
    is_terminal of the real start). The losses use the steps t = 0 .. H - 1."""
    if horizon < 2:
        raise ValueError(f"imagination_timeline needs a horizon of at least 2 steps, got {horizon}")
    H, dx = horizon, 2.3
    rows = {"reward": 3.9, "discount": 3.1, "value": 2.3, "return": 1.5, "weight": 0.7}
    names = {"reward": "reward head", "discount": "discount head", "value": "target critic",
             "return": "λ-return", "weight": "loss weight"}
    fig, ax = plt.subplots(figsize=(2.0 + 1.9 * (H + 1), 5.4))
    ax.add_patch(plt.Rectangle((-0.75, 0.25), (H - 1) * dx + 1.5, 2.45, color="#f3f0f8", zorder=0))
    ax.text((H - 1) * dx / 2, 0.02, "shaded: the per-step terms of the actor and critic losses, t = 0 … H−1",
            ha="center", fontsize=9, color="tab:purple")
    for row, y in rows.items():
        ax.text(-1.0, y, names[row], ha="right", va="center", fontsize=10, color="dimgray")

    def cell(t, row, math, array=""):
        ax.text(t * dx, rows[row] + 0.08, math, ha="center", va="center", fontsize=13)
        if array:
            ax.text(t * dx, rows[row] - 0.27, array, ha="center", va="center", fontsize=7.5, family="monospace",
                    color="gray")

    for t in range(H + 1):
        style = dict(boxstyle="circle,pad=0.35", fc="#d9f0d3" if t == 0 else "#fde3c8",
                     ec="tab:green" if t == 0 else "tab:orange")
        ax.text(t * dx, 4.9, f"$s_{{{t}}}$", ha="center", va="center", fontsize=14, bbox=style, zorder=3)
        if t < H:
            ax.annotate("", xy=((t + 1) * dx - 0.38, 4.9), xytext=(t * dx + 0.38, 4.9),
                        arrowprops=dict(arrowstyle="-|>", lw=1.3))
            ax.text((t + 0.5) * dx, 5.12, f"$a_{{{t}}} \\sim \\pi(s_{{{t}}})$", ha="center", fontsize=11)
            ax.text((t + 0.5) * dx, 4.62, f"actions[{t}]", ha="center", fontsize=7.5, family="monospace",
                    color="gray")
        if t >= 1:
            cell(t, "reward", f"$\\hat r_{{{t}}}$", f"reward[{t - 1}]")
            cell(t, "discount", f"$d_{{{t}}}$", f"discount[{t - 1}]")
        cell(t, "value", f"$v_{{{t}}}$", f"value[{t}]")
        if t < H:
            cell(t, "return", f"$R_{{{t}}}$", f"returns[{t}]")
            cell(t, "weight", "$w_0 = c_0$" if t == 0 else f"$w_{{{t}}} = w_{{{t - 1}}} d_{{{t}}}$",
                 f"weight[{t}]")
        else:
            cell(t, "return", f"$R_{{{H}}} = v_{{{H}}}$", "bootstrap")
    ax.text(0, 5.55, "real start (posterior)", ha="center", fontsize=8.5, color="tab:green")
    ax.text((H + 1) * dx / 2, 5.55, "imagined by the prior", ha="center", fontsize=8.5, color="tab:orange")
    # what one return is made of: R_1 reads r_2, d_2, v_2 and R_2 from the next column
    for row in ("reward", "discount", "value", "return"):
        ax.annotate("", xy=(dx + 0.35, rows["return"] + 0.05), xytext=(2 * dx - 0.35, rows[row] + 0.05),
                    arrowprops=dict(arrowstyle="-|>", color="tab:red", lw=0.9, alpha=0.7,
                                    connectionstyle="arc3,rad=0.15"))
    ax.set_title("imagination, one trajectory: $R_t = \\hat r_{t+1} + d_{t+1}\\,((1-\\lambda)\\, v_{t+1} + "
                 "\\lambda R_{t+1})$  (red: the inputs of $R_1$)", fontsize=11)
    ax.set_xlim(-3.4, H * dx + 0.9)
    ax.set_ylim(-0.1, 5.8)
    ax.set_axis_off()
    fig.tight_layout()
    return fig
