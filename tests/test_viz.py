"""Pictures and videos: grids, open-loop figures, learning curves from the CSV, mp4/gif writing, dream viewer."""

import imageio.v2 as imageio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dreamer_tutorial import viz  # noqa: E402


def frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_frame_grid_shows_every_frame():
    fig = viz.frame_grid(frames(10), titles=[str(i) for i in range(10)], ncols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10 and len(fig.axes) == 12  # 3 rows x 4 columns, two empty
    np.testing.assert_array_equal(shown[3].images[0].get_array(), frames(10)[3])
    plt.close(fig)


def test_openloop_figure_rows_are_real_model_and_error():
    truth, model = frames(16)[None], frames(16, seed=1)[None]
    fig = viz.plot_openloop(truth, model, context=5, every=2)
    axes = np.array(fig.axes).reshape(3, 8)
    np.testing.assert_array_equal(axes[0, 1].images[0].get_array(), truth[0, 2])
    np.testing.assert_array_equal(axes[1, 1].images[0].get_array(), model[0, 2])
    error = np.abs(truth[0, 2].astype(int) - model[0, 2].astype(int))
    np.testing.assert_array_equal(axes[2, 1].images[0].get_array(), error)
    assert "recon" in axes[0, 2].get_title() and "dream" in axes[0, 3].get_title()  # t=4 < 5 <= t=6
    plt.close(fig)
    with pytest.raises(ValueError, match="uint8"):
        viz.plot_openloop(truth.astype(np.float32), model, context=5)


def test_dream_viewer_static_fallback_is_the_openloop_figure():
    truth, model = frames(8)[None], frames(8, seed=1)[None]
    fig = viz.dream_viewer(truth, model, context=3, static=True)
    assert isinstance(fig, plt.Figure)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), truth[0, 0])
    plt.close(fig)
    fig = viz.dream_viewer(truth, model, context=3)  # no IPython kernel here: static as well
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    with pytest.raises(ValueError, match="index"):
        viz.dream_viewer(truth, model, context=3, index=1)


def panel(picture, i, scale=3, gap=4, band=34):
    """Panel i of a `compose_frame` picture (the layout its docstring states)."""
    x = gap + i * (64 * scale + gap)
    return picture[band:band + 64 * scale, x:x + 64 * scale]


def test_dream_viewer_prerenders_every_step_as_real_model_error():
    truth, model = np.stack([frames(6, s) for s in (0, 1)]), np.stack([frames(6, s) for s in (2, 3)])
    viewer = viz.dream_viewer(truth, model, context=2, index=1, static=False)
    assert viewer.sequence.value == 1 and viewer.slider.max == 5 and viewer.play.max == 5
    assert viewer.play.interval == 150
    for seq in (1, 0):  # switching the sequence shows that sequence's pictures
        viewer.sequence.value = seq
        curves = []
        for t in (0, 4):
            viewer.slider.value = t
            picture = viz._decode_png(viewer.frame.value)
            error = np.abs(truth[seq, t].astype(int) - model[seq, t].astype(int))
            for i, expected in enumerate((truth[seq, t], model[seq, t], error)):
                np.testing.assert_array_equal(panel(picture, i), expected.repeat(3, 0).repeat(3, 1))
            curves.append(viewer.curve.value)
        assert curves[0] != curves[1]  # the error curve's cursor moves with the slider
    pictures = viz.open_loop_frames(truth, model, context=2, index=0)
    assert pictures.shape[0] == 6 and pictures.dtype == np.uint8  # one picture per time step
    np.testing.assert_array_equal(pictures[4], viz._decode_png(viewer.frame.value))
    plt.close("all")


def test_dream_viewer_play_is_jslinked_to_the_slider_and_has_the_dom_hooks():
    import ipywidgets as widgets
    from ipywidgets.widgets.widget_link import Link

    viewer = viz.dream_viewer(frames(5)[None], frames(5, 1)[None], context=2, static=False)
    assert isinstance(viewer.link, Link)  # jslink: the browser moves the slider while Play runs
    assert viewer.link.source == (viewer.play, "value") and viewer.link.target == (viewer.slider, "value")
    assert "dream-viewer" in viewer._dom_classes
    for name in ("slider", "play", "frame", "sequence"):
        assert f"dream-viewer-{name}" in getattr(viewer, name)._dom_classes
    assert isinstance(viewer.frame, widgets.Image) and isinstance(viewer.play, widgets.Play)
    assert viewer.frame.value[:8] == b"\x89PNG\r\n\x1a\n"
    viewer.slider.value = 3
    assert viewer.frame.value != viz._png(viz.open_loop_frames(frames(5)[None], frames(5, 1)[None], 2)[0])


def test_dream_error_is_the_mean_squared_pixel_error_per_step():
    truth, model = frames(7)[None], frames(7, seed=1)[None]
    expected = [np.mean((truth[0, t] / 255.0 - model[0, t] / 255.0) ** 2) for t in range(7)]
    np.testing.assert_allclose(viz.dream_error(truth, model)[0], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        viz.dream_error(truth, model[:, :3])


def test_curve_frames_draw_a_cursor_at_each_step():
    curves = viz.curve_frames([("a", np.arange(5), np.arange(5.0)), ("b", np.arange(1, 5), np.ones(4))], 5)
    assert curves.shape[0] == 5 and curves.dtype == np.uint8
    red = np.all(curves == (214, 39, 40), axis=-1)  # the cursor's colour
    columns = [np.flatnonzero(red[t].any(0)) for t in range(5)]
    centres = [c.mean() for c in columns]
    assert all(len(c) == 2 for c in columns)  # a two-pixel line ...
    assert np.all(np.diff(centres) > 0)  # ... that moves right, by equal steps (linear x axis)
    np.testing.assert_allclose(np.diff(centres), np.diff(centres)[0], atol=1)
    # outside the cursor every step shows the same picture
    np.testing.assert_array_equal(curves[0][~(red[0] | red[1])], curves[1][~(red[0] | red[1])])


def test_actor_dream_follows_the_actor_in_the_world_model():
    import torch

    from dreamer_tutorial import ActorCritic, Config, WorldModel

    torch.manual_seed(0)
    config = Config.preset("debug", device="cpu")
    wm = WorldModel(config, action_dim=2)
    ac = ActorCritic(config, wm.rssm.feat_dim, action_dim=2, discrete=False)
    batch = {"obs": torch.as_tensor(frames(3)[None]), "action": torch.zeros(1, 3, 2),
             "is_first": torch.tensor([[True, False, False]])}
    with torch.no_grad():
        post, _ = wm.observe(batch)
    start = post.map(lambda x: x[0])  # the 3 posterior states of a real sequence
    dream = viz.actor_dream(wm, ac, start, horizon=4)
    assert dream["frames"].shape == (3, 5, 64, 64, 3) and dream["frames"].dtype == np.uint8
    assert dream["reward"].shape == dream["discount"].shape == (3, 4)
    assert dream["value"].shape == (3, 5) and dream["action"].shape == (3, 4, 2)
    feat = torch.as_tensor(dream["feat"])
    np.testing.assert_array_equal(dream["feat"][:, 0], start.feat.numpy())  # s_0 is the real posterior state
    with torch.no_grad():  # the heads applied by hand to the imagined features
        reward = wm.reward_head(feat[:, 1:]).squeeze(-1)
        discount = config.gamma * torch.sigmoid(wm.discount_head(feat[:, 1:]).squeeze(-1))
        value = ac.critic(feat).squeeze(-1)
        image = wm.decoder(feat).movedim(-3, -1)
    np.testing.assert_allclose(dream["reward"], reward.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dream["discount"], discount.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dream["value"], value.numpy(), rtol=1e-5, atol=1e-6)
    pixels = ((image + 0.5).clamp(0, 1) * 255).numpy()
    assert np.abs(dream["frames"].astype(float) - pixels).max() <= 0.5 + 1e-3
    # each imagined state follows from the previous one and the actor's action through the prior
    state = start.map(lambda x: x)
    with torch.no_grad():
        prior = wm.rssm.img_step(state, torch.as_tensor(dream["action"][:, 0]))
    np.testing.assert_allclose(dream["feat"][:, 1, :config.deter], prior.deter.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="horizon"):
        viz.actor_dream(wm, ac, start, horizon=0)

    fig = viz.actor_dream_viewer(dream, static=True)
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    viewer = viz.actor_dream_viewer(dream, index=2, static=False)
    viewer.slider.value = 3
    np.testing.assert_array_equal(panel(viz._decode_png(viewer.frame.value), 0), dream["frames"][2, 3]
                                  .repeat(3, 0).repeat(3, 1))
    assert viewer.link.target == (viewer.slider, "value") and viewer.slider.max == 4
    with pytest.raises(ValueError, match="reward and discount"):
        viz.actor_dream_viewer({**dream, "reward": dream["reward"][:, :2]})


def test_curves_from_the_metrics_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,loss,eval_return\n100,2.0,\n200,1.0,-5\n300,0.5,\n")
    metrics = viz.load_metrics(tmp_path)
    np.testing.assert_array_equal(metrics["step"], [100, 200, 300])
    assert np.isnan(metrics["eval_return"][0]) and metrics["eval_return"][1] == -5
    fig = viz.plot_curves(tmp_path, ["loss", "eval_return"])
    x, y = fig.axes[1].lines[0].get_data()
    np.testing.assert_array_equal(x, [200])
    np.testing.assert_array_equal(y, [-5])
    plt.close(fig)
    # training metrics are smoothed (moving average), evaluation points are drawn as measured with a std band
    (tmp_path / "metrics.csv").write_text("step,loss,eval_return,eval_std\n100,4.0,,\n200,2.0,-5,1\n"
                                          "300,1.0,,\n400,3.0,7,2\n")
    fig = viz.plot_curves(tmp_path, ["loss", "eval_return"], smooth=2)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [3.0, 1.5, 2.0])
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [-5, 7])
    band = fig.axes[1].collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(-6) and band[:, 1].max() == pytest.approx(9)
    plt.close(fig)
    with pytest.raises(ValueError, match="available"):
        viz.plot_curves(tmp_path, ["nope"])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_save_video_writes_readable_files(tmp_path, suffix):
    path = viz.save_video(frames(12), tmp_path / f"v{suffix}", fps=10)
    read = imageio.mimread(path)
    assert len(read) == 12
    assert read[0].shape[:2] == ((256, 256) if suffix == ".mp4" else (64, 64))


def test_save_video_falls_back_to_gif_without_ffmpeg(tmp_path, monkeypatch):
    import imageio.v2

    real = imageio.v2.mimsave

    def no_ffmpeg(path, frames, **kwargs):
        if str(path).endswith(".mp4"):
            raise ValueError("Could not find a backend to open the file with iomode 'wI'")
        return real(path, frames, **kwargs)

    monkeypatch.setattr(imageio.v2, "mimsave", no_ffmpeg)
    path = viz.save_video(frames(5), tmp_path / "v.mp4")
    assert path.suffix == ".gif" and len(imageio.mimread(path)) == 5
    assert not (tmp_path / "v.mp4").exists()


def test_save_video_falls_back_to_gif_when_imageio_ffmpeg_is_missing(tmp_path, monkeypatch):
    # The GPU image has imageio and tifffile but not imageio-ffmpeg: an .mp4 must become a .gif, not reach tifffile.
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` now raises ImportError
    path = viz.save_video(frames(5), tmp_path / "v.mp4")
    assert path.suffix == ".gif" and len(imageio.mimread(path)) == 5
    assert not (tmp_path / "v.mp4").exists()


def arrows(ax):
    """(source label, target label, arrowprops) of every node-to-node arrow of a `viz._graph` diagram."""
    nodes = {tuple(np.round(t.get_position(), 6)): t.get_text() for t in ax.texts if t.get_bbox_patch() is not None}
    found = []
    for ann in ax.texts:
        if hasattr(ann, "arrow_patch") and ann.arrow_patch is not None:
            source, target = tuple(np.round(ann.xyann, 6)), tuple(np.round(ann.xy, 6))
            if source in nodes and target in nodes:
                found.append((nodes[source], nodes[target], ann.arrow_patch))
    return found


def test_rssm_diagram_observe_uses_the_frame_and_imagine_does_not():
    fig = viz.rssm_diagram()
    observe, imagine = ({(a, b) for a, b, _ in arrows(ax)} for ax in fig.axes)
    into_h = {("$h_{t-1}$", "$h_t$"), ("$z_{t-1}$", "$h_t$"), ("$a_{t-1}$", "$h_t$")}
    assert observe == into_h | {("$h_t$", "$z_t$"), ("$e_t$", "$z_t$"), ("frame $x_t$", "$e_t$"),
                                ("$h_t$", r"$\hat z_t$")}
    assert imagine == into_h | {("$h_t$", r"$\hat z_t$")}  # the prior alone: nothing from a frame
    plt.close(fig)


@pytest.mark.parametrize("balance", [0.8, 0.5])
def test_kl_balance_diagram_sends_balance_to_the_prior_and_the_rest_to_the_posterior(balance):
    fig = viz.kl_balance_diagram(balance)
    red = {(a.split("\n")[0], b.split("\n")[0]): patch.get_linewidth() for a, b, patch in arrows(fig.axes[0])
           if patch.get_edgecolor()[:3] == plt.matplotlib.colors.to_rgb("tab:red")}
    prior_term, post_term = r"$\alpha$ KL[sg($q$) ‖ $p$]", r"$(1 - \alpha)$ KL[$q$ ‖ sg($p$)]"
    assert set(red) == {(prior_term, "prior"), (post_term, "posterior")}  # gradients: the term without sg
    assert red[(prior_term, "prior")] / red[(post_term, "posterior")] == pytest.approx(balance / (1 - balance))
    blocked = {(a.split("\n")[0], b.split("\n")[0]) for a, b, patch in arrows(fig.axes[0]) if patch.get_linestyle()
               not in ("-", "solid")}
    assert blocked == {(prior_term, "posterior"), (post_term, "prior")}  # where sg stops the gradient
    plt.close(fig)
    with pytest.raises(ValueError, match="balance"):
        viz.kl_balance_diagram(1.5)


def test_imagination_timeline_puts_each_quantity_under_its_state():
    H = 4
    fig = viz.imagination_timeline(H)
    texts = {t.get_text(): t.get_position()[0] for t in fig.axes[0].texts}
    column = {t: texts[f"$s_{{{t}}}$"] for t in range(H + 1)}
    for t in range(1, H + 1):  # r_t and d_t come from the heads at s_t: array index t - 1
        assert texts[f"$\\hat r_{{{t}}}$"] == texts[f"reward[{t - 1}]"] == column[t]
        assert texts[f"$d_{{{t}}}$"] == texts[f"discount[{t - 1}]"] == column[t]
    for t in range(H):  # R_t, v_t and w_t belong to s_t; a_t sits between s_t and s_{t+1}
        assert texts[f"$R_{{{t}}}$"] == texts[f"returns[{t}]"] == texts[f"weight[{t}]"] == column[t]
        assert texts[f"$v_{{{t}}}$"] == column[t]
        assert column[t] < texts[f"$a_{{{t}}} \\sim \\pi(s_{{{t}}})$"] < column[t + 1]
    assert texts[f"$R_{{{H}}} = v_{{{H}}}$"] == texts["bootstrap"] == column[H]
    assert "$\\hat r_{0}$" not in texts and f"$R_{{{H}}}$" not in texts
    plt.close(fig)
