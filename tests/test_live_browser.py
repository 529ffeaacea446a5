"""bench live's page in a real browser: headless Chromium whose camera is a short .y4m video of a
synthetic face (Chromium's fake capture device), driven over the DevTools protocol to wait for the page's
state (with a timeout) and take a screenshot. Skipped where no Chromium is installed, as the HTML
report's browser test is."""

import asyncio
import base64
import json
import subprocess
import time
import urllib.request

import keras
import numpy as np
import pytest

from bench import CLASS_NAMES
from bench.data.synthetic import face_frame
from bench.inference.annotate import EMOTION_COLORS
from bench.inference.classifier import FaceClassifier
from bench.inference.faces import Box
from bench.inference.frames import FramePipeline
from bench.live.server import BackgroundServer, LiveApp
from bench.models import build_model
from tests.test_leaderboard_html import chromium

WINDOW = (1100, 700)
FACE = Box(200, 100, 144, 144)  # where face_frame() pastes its face in the first camera frame
RGB = {label: bgr[::-1] for label, bgr in EMOTION_COLORS.items()}  # the page draws predict's colours


def write_y4m(path, frames: list[np.ndarray], fps: int = 10):
    """Grey frames as a YUV4MPEG2 (4:2:0) file: Chromium's fake camera plays it in a loop."""
    height, width = frames[0].shape[:2]
    chroma = bytes([128]) * (width // 2 * height // 2 * 2)
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + np.ascontiguousarray(frame[..., 0]).tobytes() + chroma)
    return path


class DevTools:
    """The few DevTools-protocol calls the test needs, over aiohttp's WebSocket client."""

    def __init__(self, ws):
        self.ws, self.ids = ws, 0

    async def call(self, method: str, **params):
        self.ids += 1
        await self.ws.send_json({"id": self.ids, "method": method, "params": params})
        while True:
            reply = await self.ws.receive_json()
            if reply.get("id") == self.ids:
                return reply["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float):
        """The value of ``expression`` once it is truthy; fails after ``timeout`` seconds with the last one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        state = await self.evaluate("JSON.stringify(document.body.dataset)")
        pytest.fail(f"the page did not get there in {timeout} s: {expression}; its state: {state}")


def launch(binary: str, tmp_path, url: str, *flags: str) -> tuple[subprocess.Popen, str]:
    """Chromium on ``url``; returns the process and the page's DevTools WebSocket address."""
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",  # tests may run as root (CI containers); the page is our own
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--remote-debugging-port=0",
            *flags,
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        port_file = profile / "DevToolsActivePort"
        if port_file.is_file() and port_file.read_text().strip():
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            if pages:
                return process, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    process.kill()
    pytest.fail("Chromium did not open its DevTools port within 30 s")


def drive(binary, tmp_path, url, flags, script):
    """Run ``script(devtools)`` against the page in Chromium, then close Chromium."""
    import aiohttp

    process, address = launch(binary, tmp_path, url, *flags)

    async def main():
        async with aiohttp.ClientSession() as session, session.ws_connect(address, max_msg_size=0) as ws:
            return await script(DevTools(ws))

    try:
        return asyncio.run(main())
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server():
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    classifier = FaceClassifier(model)
    with BackgroundServer(LiveApp(FramePipeline(classifier))) as url:
        yield url


@pytest.fixture
def binary():
    found = chromium()
    if found is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; `make test` tries that)")
    return found


def test_the_page_shows_boxes_labels_and_fps_for_a_fake_camera(binary, server, tmp_path):
    camera = write_y4m(tmp_path / "camera.y4m", [face_frame(left=200 + 2 * i) for i in range(10)])
    flags = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]

    async def script(tools):
        await tools.wait_for("Number(document.body.dataset.frames) >= 8 && document.body.dataset.faces === '1'", 40)
        await tools.evaluate("document.getElementById('view').click()")  # pause: the DOM and picture agree
        await tools.wait_for("document.body.dataset.state === 'paused'", 10)
        state = await tools.evaluate("Object.assign({}, document.body.dataset)")
        canvas = await tools.evaluate(
            "(() => { const r = document.getElementById('view').getBoundingClientRect();"
            " return [r.left, r.top, r.width]; })()"
        )
        shot = await tools.call("Page.captureScreenshot", format="png")
        return state, canvas, base64.b64decode(shot["data"])

    state, (left, top, width), png = drive(binary, tmp_path, server, flags, script)
    assert state["message"] == ""
    (label,) = state["labels"].split(",")
    assert label in CLASS_NAMES and float(state["fps"]) > 0
    ((x, y, w, h),) = json.loads(state["boxes"])
    assert Box(x, y, w, h).iou(FACE) > 0.4
    path = tmp_path / "live.png"
    path.write_bytes(png)
    import matplotlib.image

    pixels = np.round(matplotlib.image.imread(path)[..., :3] * 255).astype(int)
    assert pixels.shape[1] == WINDOW[0] and pixels.shape[0] > 480  # the viewport: the window less its frame
    assert width == 640  # the canvas is drawn at the camera's size: frame pixels are page pixels
    frame = pixels[round(top) : round(top) + 480, round(left) : round(left) + 640]
    assert np.ptp(frame) > 100  # the camera's frame is drawn, not an empty canvas
    coloured = np.all(np.abs(frame - RGB[label]) <= 8, axis=2)  # the box and its label, in the label's colour
    for side in (coloured[y + h // 4 : y + 3 * h // 4, x], coloured[y + h // 4 : y + 3 * h // 4, x + w]):
        assert side.mean() > 0.9, side.mean()  # the box's left and right sides
    assert coloured[y - 22, x + 2 : x + 40].mean() > 0.9  # the label's background, above its text


def test_a_denied_camera_is_a_message_on_the_page(binary, server, tmp_path):
    async def script(tools):
        await tools.wait_for("document.body.dataset.state === 'error'", 20)
        return await tools.evaluate("document.body.dataset.message")

    flags = ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
    message = drive(binary, tmp_path, server, flags, script)
    assert message.startswith("camera permission denied: allow the camera for this page"), message
