"""bench live's server over its own protocol: frames answered one at a time, bad frames refused with a
message while the connection stays open, two clients at once, a client gone mid-stream, --source, --record
and a port already taken. The browser itself is tested in test_live_browser.py."""

import asyncio
import json
import os
import socket

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bench import CLASS_NAMES
from bench.cli import cli
from bench.data.synthetic import face_frame
from bench.inference.classifier import FaceClassifier, load_keras_model
from bench.inference.faces import Box
from bench.inference.frames import FaceOptions, FramePipeline
from bench.live.frames import BadFrame, decode_frame, encode_jpeg
from bench.live.server import BackgroundServer, LiveApp, LiveSettings, page_html, port_problem
from bench.live.sources import LatestFrameSource, parse_source

FACE = Box(200, 100, 144, 144)  # where face_frame() pastes its face (x, y, w, h)


@pytest.fixture(scope="module")
def pipeline(model_file):
    return FramePipeline(FaceClassifier(load_keras_model(model_file)), FaceOptions())


def jpeg(frame=None) -> bytes:
    return encode_jpeg(face_frame() if frame is None else frame)


def talk(url: str, script):
    """Run ``script(session, ws_url)`` (a coroutine function) against the server at ``url``."""
    import aiohttp

    async def main():
        async with aiohttp.ClientSession() as session:
            return await asyncio.wait_for(script(session, url.replace("http://", "ws://") + "ws"), timeout=60)

    return asyncio.run(main())


async def receive_json(ws) -> dict:
    msg = await ws.receive()
    assert msg.type.name == "TEXT", msg
    return json.loads(msg.data)


async def until(ws, kind: str) -> dict:
    """The next message of type ``kind``, skipping notices."""
    while True:
        message = await receive_json(ws)
        if message["type"] == kind:
            return message
        assert message["type"] == "notice", message


def test_decode_frame_checks_bytes_type_and_size_before_decoding():
    frame = face_frame()
    assert decode_frame(jpeg(frame)).shape == (480, 640, 3)
    ok, png = cv2.imencode(".png", frame)
    np.testing.assert_array_equal(decode_frame(png.tobytes()), frame)  # PNG is lossless
    np.testing.assert_array_equal(decode_frame(png.tobytes(), color=False), frame[..., 0])  # a grey frame
    with pytest.raises(BadFrame, match="over the 1,000-byte limit"):
        decode_frame(jpeg(frame), max_bytes=1000)
    with pytest.raises(BadFrame, match="must be a JPEG or PNG"):
        decode_frame(b"GIF89a" + bytes(100))
    with pytest.raises(BadFrame, match="malformed JPEG frame"):
        decode_frame(b"\xff\xd8\xff" + bytes(50))
    with pytest.raises(BadFrame, match="3000x10 frame is over the 1920-pixel limit"):
        decode_frame(jpeg(np.zeros((10, 3000, 3), np.uint8)))
    with pytest.raises(BadFrame, match="truncated JPEG"):
        decode_frame(jpeg(frame)[:3000])  # a header that promises pixels the bytes do not hold
    with pytest.raises(BadFrame, match="could not be decoded"):
        decode_frame(png.tobytes()[: len(png) // 2])


def test_page_is_shipped_with_its_state_on_the_body():
    html = page_html()
    for attribute in ("data-state", "data-faces", "data-labels", "data-fps", "data-frames", "data-message"):
        assert attribute in html
    assert "new WebSocket" in html and "getUserMedia" in html and "NotAllowedError" in html


def test_a_frame_gets_its_faces_probabilities_and_stage_times(pipeline):
    live = LiveApp(pipeline, LiveSettings(window=3))
    with BackgroundServer(live) as url:

        async def script(session, ws_url):
            async with session.get(url) as page:
                assert page.status == 200 and "bench live" in await page.text()
            async with session.ws_connect(ws_url) as ws:
                hello = await receive_json(ws)
                answers = []
                for _ in range(3):
                    await ws.send_bytes(jpeg())
                    answers.append(await receive_json(ws))
                return hello, answers

        hello, answers = talk(url, script)
    assert hello["type"] == "hello" and hello["mode"] == "browser" and hello["classes"] == list(CLASS_NAMES)
    assert [a["seq"] for a in answers] == [1, 2, 3]
    last = answers[-1]
    assert (last["width"], last["height"]) == (640, 480)
    (face,) = last["faces"]
    assert Box(*face["box"]).iou(FACE) > 0.4
    assert face["shown"] in CLASS_NAMES and 0 < face["confidence"] <= 1
    assert sum(last["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["emotion"] == max(last["probabilities"], key=last["probabilities"].get)
    assert set(last["stage_ms"]) == {"decode", "detect", "preprocess", "predict", "draw"}


def test_bad_frames_are_refused_and_the_connection_keeps_serving(pipeline):
    logged = []
    live = LiveApp(pipeline, LiveSettings(max_frame_bytes=200_000), log=logged.append)
    with BackgroundServer(live) as url:

        async def script(session, ws_url):
            async with session.ws_connect(ws_url) as ws:
                await receive_json(ws)
                replies = []
                for data in (b"hello", b"\xff\xd8\xff" + bytes(20), bytes(250_000), b"also not a frame", jpeg()):
                    await ws.send_bytes(data)
                    replies.append(await receive_json(ws))
                await ws.send_str("next")  # text is for --source
                replies.append(await receive_json(ws))
                await ws.send_bytes(bytes(500_000))  # over twice the limit: aiohttp closes with 1009
                closing = await ws.receive()
                return replies, closing, ws.close_code

        replies, closing, code = talk(url, script)
    kinds = [r["type"] for r in replies]
    assert kinds == ["error", "error", "error", "error", "result", "error"]
    assert "JPEG or PNG" in replies[0]["message"] and "malformed" in replies[1]["message"]
    assert "200,000-byte limit" in replies[2]["message"] and "send JPEG frames" in replies[5]["message"]
    assert code == 1009, (closing, code)
    refused = [line for line in logged if "refused" in line]
    assert len(refused) == 3  # one line per kind of bad frame, not one per frame
    assert any("disconnected after 1 frames" in line for line in logged)


def test_two_clients_at_once_and_one_leaving_mid_stream(pipeline):
    logged = []
    live = LiveApp(pipeline, LiveSettings(), log=logged.append)
    with BackgroundServer(live) as url:

        async def script(session, ws_url):
            first = await session.ws_connect(ws_url)
            await receive_json(first)
            async with session.ws_connect(ws_url) as second:
                hello = await receive_json(second)
                notice = await until(first, "notice")
                await first.send_bytes(jpeg())
                await second.send_bytes(jpeg())
                answers = [await until(first, "result"), await until(second, "result")]
                await first.send_bytes(jpeg())  # ...and leaves before its answer
                await first.close()
                for _ in range(2):
                    await second.send_bytes(jpeg())
                    answers.append(await until(second, "result"))
            return hello, notice, answers

        hello, notice, answers = talk(url, script)
    assert hello["client"] == 2 and "2 browsers are connected" in notice["message"]
    assert [len(a["faces"]) for a in answers] == [1, 1, 1, 1]
    assert [a["seq"] for a in answers[1:]] == [1, 2, 3]  # each client has its own count (and smoother)
    assert any(line.startswith("client 1 disconnected") for line in logged)


def test_source_frames_are_streamed_with_their_answers_until_the_video_ends(pipeline, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 100.0, (640, 480))
    for i in range(4):
        writer.write(face_frame(left=200 + 4 * i))
    writer.release()
    source = LatestFrameSource(parse_source(str(video))).start()
    live = LiveApp(pipeline, LiveSettings(record=tmp_path / "rec"), source)
    (tmp_path / "rec").mkdir()
    try:
        with BackgroundServer(live) as url:

            async def script(session, ws_url):
                async with session.ws_connect(ws_url) as ws:
                    hello = await receive_json(ws)
                    frames, answers = [], []
                    while True:
                        await ws.send_str("next")
                        msg = await ws.receive()
                        if msg.type.name == "BINARY":
                            frames.append(cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR))
                            msg = await ws.receive()
                        answer = json.loads(msg.data)
                        answers.append(answer)
                        if answer["type"] == "error":
                            return hello, frames, answers

            hello, frames, answers = talk(url, script)
    finally:
        source.stop()
    assert hello["mode"] == "source" and hello["source"] == f"'{video}'" and hello["recording"]
    assert 1 <= len(frames) <= 4 and all(f.shape == (480, 640, 3) for f in frames)
    assert all(len(a["faces"]) == 1 and "encode" in a["stage_ms"] for a in answers[:-1])
    assert answers[-1]["fatal"] and "ended after 4 frames" in answers[-1]["message"]
    lines = (tmp_path / "rec").glob("live-*-1.jsonl")
    (recorded,) = lines
    assert len(recorded.read_text().splitlines()) == len(frames)
    assert recorded.with_suffix(".mp4").stat().st_size > 0


def test_nothing_is_written_without_record(pipeline, tmp_path):
    live = LiveApp(pipeline, LiveSettings())
    with BackgroundServer(live) as url:

        async def script(session, ws_url):
            async with session.ws_connect(ws_url) as ws:
                await receive_json(ws)
                await ws.send_bytes(jpeg())
                return await receive_json(ws)

        assert talk(url, script)["type"] == "result"
    assert list(tmp_path.iterdir()) == []  # the test's working directory (conftest chdirs into it)


def test_port_taken_and_bad_source_are_one_line_each(model_file, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["live", "--model", str(model_file), "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is already in use (another bench live?); pass --port N or stop the other "
        "server"
    )
    missing = tmp_path / "missing.mp4"
    result = CliRunner().invoke(cli, ["live", "--model", str(model_file), "--source", str(missing)])
    assert result.exit_code == 2 and f"error: cannot open '{missing}'" in result.output
    (tmp_path / "f").write_text("")  # a file where --record's parent folder should be
    result = CliRunner().invoke(cli, ["live", "--model", str(model_file), "--record", str(tmp_path / "f" / "x")])
    assert result.exit_code == 2 and "cannot write to --record" in result.output
    assert "ports below 1024" in port_problem(PermissionError(13, "Permission denied"), "0.0.0.0", 80)


class StoppingCamera:
    """A stand-in for ``cv2.VideoCapture`` on a camera that gives two frames, then none."""

    def __init__(self, source):
        self.left = 2

    def isOpened(self):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        self.left -= 1
        return (True, face_frame()) if self.left >= 0 else (False, None)

    def release(self):
        pass


def test_a_camera_that_stops_is_reported_as_stopped(monkeypatch):
    import bench.live.sources as sources

    monkeypatch.setattr(cv2, "VideoCapture", StoppingCamera)
    monkeypatch.setattr(sources, "STALL_SECONDS", 0.3)
    source = LatestFrameSource(parse_source("0")).start()
    try:
        frame, seen = source.next_after(0, timeout=5)
        assert frame.shape == (480, 640, 3) and seen >= 1
        frame, _ = source.next_after(2, timeout=5)
        assert frame is None
        assert source.problem == "camera 0 stopped giving frames (unplugged, or taken by another program?)"
    finally:
        source.stop()


def test_a_recording_fault_stops_recording_not_the_stream(pipeline, tmp_path, monkeypatch):
    from bench.live.record import Recorder
    from bench.live.session import ClientSession

    session = ClientSession(pipeline, 7, record=tmp_path)
    answer = session.answer(face_frame())
    assert len(answer["faces"]) == 1 and session.take_problem() is None

    def full_disk(self, message, annotated):
        raise OSError(28, "No space left on device", str(self.lines_path))

    monkeypatch.setattr(Recorder, "write", full_disk)
    assert len(session.answer(face_frame())["faces"]) == 1  # still answered
    problem = session.take_problem()
    assert problem.startswith("client 7: recording stopped: '") and problem.endswith("No space left on device")
    assert session.take_problem() is None and session.recorder is None
    assert len(session.answer(face_frame())["faces"]) == 1
    (lines,) = tmp_path.glob("live-*-7.jsonl")
    assert len(lines.read_text().splitlines()) == 1  # the frame before the fault


def test_the_speed_benchmark_plays_a_camera_through_the_protocol(pipeline):
    from tests.conftest import load_benchmark

    live_speed = load_benchmark("live_speed")
    frames = live_speed.camera_frames(640, 480, count=2)
    with BackgroundServer(LiveApp(pipeline)) as url:
        cpu = lambda: live_speed.process_cpu_seconds(os.getpid())  # noqa: E731 - the server runs in this process
        figures = asyncio.run(live_speed.play(url, frames, seconds=1.0, warmup=2, camera_fps=200.0, cpu=cpu))
    sent, answered = figures["frames"]["sent"], figures["frames"]["answered"]
    assert sent == answered > 0 and figures["fps"] > 0
    assert figures["frames"]["camera"] >= sent and figures["frames"]["dropped"] == figures["frames"]["camera"] - sent
    latency = figures["latency_ms"]
    assert 0 < latency["round_trip"]["p50"] <= latency["round_trip"]["p95"] <= latency["age"]["p95"]
    assert set(figures["stage_ms"]) == {"decode", "detect", "preprocess", "predict", "draw"}
    assert figures["server_cpu_ms_per_frame"] > 0
