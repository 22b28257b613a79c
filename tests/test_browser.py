"""Lesson 07 in a real browser: JupyterLab serves the lesson, headless Chromium (driven by playwright) runs every
cell in quick mode through the Run menu, then moves the dream viewer's slider and presses Play, and the picture
must change each time.

`make test` runs it (marker `browser`). Without chromium or playwright it skips with one line that says what to
install. JupyterLab serves a temporary copy of notebooks/, so nothing in the repository is written (lesson 07
writes runs/). Screenshots go to tests/screenshots/ (gitignored); the test prints their paths.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
LESSON = "07_dreamer_agent.ipynb"
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT_S = 180  # JupyterLab answering, the notebook open and its kernel idle
RUN_ALL_TIMEOUT_S = 900  # lesson 07 takes ~1 min in quick mode on a free 2-core CPU
WIDGET_TIMEOUT_S = 60  # a widget change going to the kernel and a new picture coming back

# Reads the notebook model that the page renders (window.jupyterapp exists with expose_app_in_browser): in the
# DOM an error output looks exactly like stderr text (same class, same mime type), in the model it does not.
CELLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  const result = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const errors = cell.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);
    result.push({index: i, count: cell.executionCount, tags: cell.getMetadata('tags') || [], errors: errors});
  }
  return {kernel: panel.sessionContext.session?.kernel?.status ?? 'none', cells: result};
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port with a random token, serving a temporary copy of notebooks/
    in quick mode, with its own config, settings and workspace folders. Killed (with its kernels) at the end."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser test skipped: playwright is missing; pip install playwright (in the dev extras)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"browser test skipped: no chromium at {CHROMIUM}; install chromium (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks", ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel must draw inline
    env.update(DREAMER_QUICK="1", JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    port, token = _free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "jupyterlab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--notebook-dir={tmp / 'notebooks'}",
             "--LabApp.expose_app_in_browser=True", "--allow-root"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in {START_TIMEOUT_S} s; see {log_path}")
                time.sleep(1)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own process group: the server and the kernels it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def lesson(lab):
    """The lesson open in headless Chromium after Run > Run All Cells has finished (or stopped at an error):
    yields (page, the model's code cells as CELLS_JS reports them)."""
    from playwright.sync_api import sync_playwright

    url, token = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/lab/tree/{LESSON}?token={token}")
            page.wait_for_function("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel"
                                   "?.status === 'idle'", timeout=START_TIMEOUT_S * 1000)
            page.click("#jp-MainMenu .lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
            state = _wait_for_run(page)
            page.screenshot(path=SHOTS / "07_after_run_all.png")
            print(f"screenshot: {SHOTS / '07_after_run_all.png'}")
            yield page, state["cells"]
        finally:
            browser.close()


def _wait_for_run(page) -> dict:
    """Polls the model until the kernel is idle and every code cell has an execution count, or a cell holds an
    error (Run All stops there); fails after RUN_ALL_TIMEOUT_S naming the cells that have not run."""
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    time.sleep(2)  # let Run All queue the cells before the first look
    while True:
        state = page.evaluate(CELLS_JS)
        finished = all(c["count"] is not None for c in state["cells"])
        failed = any(c["errors"] and "raises-exception" not in c["tags"] for c in state["cells"])
        if state["kernel"] == "idle" and (finished or failed):
            return state
        if time.monotonic() > deadline:
            waiting = [c["index"] for c in state["cells"] if c["count"] is None]
            pytest.fail(f"Run All did not finish within {RUN_ALL_TIMEOUT_S} s; cells not run: {waiting}")
        time.sleep(2)


def test_lesson07_runs_every_cell_without_errors(lesson):
    page, cells = lesson
    assert cells, f"no code cells found in {LESSON}"
    errors = {c["index"]: c["errors"] for c in cells if c["errors"] and "raises-exception" not in c["tags"]}
    assert not errors, f"cells (index: errors) that raised: {errors}"
    assert all(c["count"] is not None for c in cells), [c["index"] for c in cells if c["count"] is None]
    counts = [c["count"] for c in cells]
    assert counts == sorted(counts), f"cells ran out of order: {counts}"
    # front-end failures never reach the model: a widget that cannot be displayed says so in the page only
    assert page.locator(".jp-OutputArea-output:has-text('Error displaying widget')").count() == 0


def test_dream_viewer_slider_and_play_change_the_picture(lesson):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page, _ = lesson
    viewer = page.locator(".dream-viewer").first
    assert viewer.count() == 1, "lesson 07 shows no dream viewer (an element with class dream-viewer)"
    viewer.scroll_into_view_if_needed()
    frame = viewer.locator("img.dream-viewer-frame")

    def snapshot(name: str) -> tuple[str, bytes]:
        path = SHOTS / f"07_viewer_{name}.png"
        png = viewer.screenshot(path=path)
        print(f"screenshot: {path}")
        return frame.get_attribute("src"), png

    def wait_for_new_frame(old_src: str, action: str) -> None:
        try:
            page.wait_for_function("([img, old]) => img.getAttribute('src') !== old",
                                   arg=[frame.element_handle(), old_src], timeout=WIDGET_TIMEOUT_S * 1000)
        except PlaywrightTimeout:
            pytest.fail(f"{action} but the viewer's frame did not change within {WIDGET_TIMEOUT_S} s")
        page.wait_for_timeout(300)  # let the new image paint before the screenshot

    src0, png0 = snapshot("start")
    handle = viewer.locator(".dream-viewer-slider .noUi-handle").first
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    wait_for_new_frame(src0, "the slider moved")
    src1, png1 = snapshot("after_slider")
    assert src1 != src0 and png1 != png0, "moving the slider did not change the picture"

    viewer.locator(".dream-viewer-play button:has(i.fa-play)").click()
    page.wait_for_timeout(1000)
    wait_for_new_frame(src1, "Play was pressed")
    src2, png2 = snapshot("after_play")
    assert src2 != src1 and png2 != png1, "pressing Play did not change the picture"
