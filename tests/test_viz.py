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


def test_dream_viewer_static_and_widget():
    truth, model = frames(8)[None], frames(8, seed=1)[None]
    fig = viz.dream_viewer(truth, model, context=3, static=True)
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    widget = viz.dream_viewer(truth, model, context=3, static=False)
    slider = widget.children[0]
    assert slider.max == 7
    slider.value = 5  # moving the slider redraws without error
    plt.close("all")


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
