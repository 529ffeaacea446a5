"""The local web server of ``bench live``: one page, one WebSocket, frames answered one at a time.

Built on aiohttp (already installed as an MLflow dependency): one well-kept library that is both the
HTTP and WebSocket server here and the WebSocket client of the tests and ``benchmarks/live_speed.py``.
Starlette would need uvicorn and a separate WebSocket package for the same.

The protocol drops frames rather than queueing them: the page sends a frame (a JPEG, or ``next`` to
pull one from ``--source``) only after the answer to the previous one, so a slow model lowers the frame
rate while latency stays one frame. The model runs in one worker thread: the event loop stays free to
accept and close connections, and two browsers take turns rather than running the model twice at once.

Messages from the server are JSON: ``hello`` (mode, classes, limits), ``result`` (faces, the largest
face's probabilities, per-stage ms; in source mode after the frame's JPEG as a binary message),
``error`` (a frame refused, or ``fatal`` when the source ended), ``notice`` (another browser joined).
"""

from __future__ import annotations

import asyncio
import errno
import importlib.resources
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.inference.frames import FramePipeline
from bench.live.frames import MAX_FRAME_BYTES, MAX_FRAME_SIDE, BadFrame, encode_jpeg
from bench.live.session import ClientSession
from bench.live.sources import LatestFrameSource

PAGE = "live.html"


@dataclass(frozen=True)
class LiveSettings:
    """Args:
    window: frames in each face's label mode (as ``bench predict --window``).
    record: folder for each client's predictions and annotated video; None writes nothing.
    max_frame_bytes, max_frame_side: the largest frame accepted (checked before decoding).
    jpeg_quality: of the source frames sent to the page.
    """

    window: int = 10
    record: Path | None = None
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_frame_side: int = MAX_FRAME_SIDE
    jpeg_quality: int = 80


def page_html() -> str:
    """The page, shipped as package data (``bench/live/static/live.html``)."""
    return importlib.resources.files("bench.live").joinpath("static", PAGE).read_text(encoding="utf-8")


class LiveApp:
    """The aiohttp application and the state its handlers share.

    Args:
        pipeline: the face pipeline every frame goes through.
        settings: see :class:`LiveSettings`.
        source: frames read on this machine (``--source``), or None for the browser's camera.
        log: where terminal lines go (the CLI's ``click.echo``): connections, refused frames, faults.
    """

    def __init__(
        self,
        pipeline: FramePipeline,
        settings: LiveSettings = LiveSettings(),
        source: LatestFrameSource | None = None,
        log: Callable[[str], None] = lambda line: None,
    ):
        from aiohttp import web

        self.pipeline, self.settings, self.source, self.log = pipeline, settings, source, log
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-live-model")
        self.numbers = itertools.count(1)
        self.clients: dict[int, object] = {}  # number -> its WebSocketResponse
        self.source_reported = False  # the source's end is one terminal line, not one per client
        self.app = web.Application()
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/ws", self.websocket)
        self.app.on_shutdown.append(self._close_clients)

    async def page(self, request):
        from aiohttp import web

        return web.Response(text=page_html(), content_type="text/html", headers={"Cache-Control": "no-store"})

    async def websocket(self, request):
        from aiohttp import WSMsgType, web

        # aiohttp closes a connection (code 1009) over twice the limit; up to it the frame is refused politely
        ws = web.WebSocketResponse(max_msg_size=2 * self.settings.max_frame_bytes, heartbeat=30)
        await ws.prepare(request)
        number = next(self.numbers)
        session = ClientSession(self.pipeline, number, self.settings.window, self.settings.record)
        self.clients[number] = ws
        self.log(f"client {number} connected from {request.remote} ({len(self.clients)} connected)")
        refused: set[str] = set()
        try:
            await ws.send_json(self._hello(number))
            await self._report(ws, session)
            if len(self.clients) > 1:
                await self._broadcast(
                    f"{len(self.clients)} browsers are connected: they take turns with the model, so each "
                    "sees a lower frame rate"
                )
            seen = 0
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and self.source is None:
                    await self._answer_frame(ws, session, msg.data, refused)
                elif msg.type == WSMsgType.TEXT and msg.data == "next" and self.source is not None:
                    seen = await self._answer_source(ws, session, seen)
                elif msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    await ws.send_json(self._error("unexpected message: " + self._expected()))
                elif msg.type == WSMsgType.ERROR:
                    self.log(f"client {number}: connection error: {ws.exception()}")
        except ConnectionResetError:
            pass  # the browser went away mid-answer: its session ends below, the server goes on
        finally:
            del self.clients[number]
            files = session.close()
            self.log(
                f"client {number} disconnected after {session.frames} frames ({session.fps:.1f} frames/s)"
                + "".join(f"; wrote {f}" for f in files)
            )
        return ws

    def _hello(self, number: int) -> dict:
        return {
            "type": "hello",
            "client": number,
            "mode": "browser" if self.source is None else "source",
            "source": None if self.source is None else self.source.name,
            "classes": list(self.pipeline.class_names),
            "max_frame_bytes": self.settings.max_frame_bytes,
            "max_frame_side": self.settings.max_frame_side,
            "recording": self.settings.record is not None,
        }

    def _expected(self) -> str:
        return "send JPEG frames as binary messages" if self.source is None else "send the text 'next'"

    @staticmethod
    def _error(message: str, fatal: bool = False) -> dict:
        return {"type": "error", "message": message, "fatal": fatal}

    async def _answer_frame(self, ws, session: ClientSession, data: bytes, refused: set[str]) -> None:
        loop = asyncio.get_running_loop()
        settings = self.settings
        try:
            answer = await loop.run_in_executor(
                self.executor, session.answer_bytes, data, settings.max_frame_bytes, settings.max_frame_side
            )
        except BadFrame as exc:
            if exc.kind not in refused:  # one terminal line per kind of bad frame and client, not one per frame
                refused.add(exc.kind)
                self.log(f"client {session.client}: refused {exc}")
            answer = self._error(str(exc))
        await ws.send_json(answer)
        await self._report(ws, session)

    async def _report(self, ws, session: ClientSession) -> None:
        """A recording fault: one terminal line and a notice on that client's page."""
        problem = session.take_problem()
        if problem:
            self.log(problem)
            await ws.send_json({"type": "notice", "message": problem})

    async def _answer_source(self, ws, session: ClientSession, seen: int) -> int:
        loop = asyncio.get_running_loop()
        frame, seen = await loop.run_in_executor(None, self.source.next_after, seen)
        if frame is None:
            problem = self.source.problem or f"{self.source.name} gave no new frame; waiting for it"
            if self.source.problem and not self.source_reported:
                self.source_reported = True
                self.log(self.source.problem)
            await ws.send_json(self._error(problem, fatal=self.source.problem is not None))
            return seen
        try:
            answer = await loop.run_in_executor(self.executor, self._source_answer, session, frame)
        except BadFrame as exc:
            await ws.send_json(self._error(str(exc)))
            return seen
        jpeg = answer.pop("jpeg")
        await ws.send_bytes(jpeg)
        await ws.send_json(answer)
        await self._report(ws, session)
        return seen

    def _source_answer(self, session: ClientSession, frame) -> dict:
        import time

        answer = session.answer(frame)
        tic = time.perf_counter()
        answer["jpeg"] = encode_jpeg(frame, self.settings.jpeg_quality)
        answer["stage_ms"]["encode"] = round((time.perf_counter() - tic) * 1000, 2)
        return answer

    async def _broadcast(self, text: str) -> None:
        self.log(text)
        for ws in list(self.clients.values()):
            if not ws.closed:
                await ws.send_json({"type": "notice", "message": text})

    async def _close_clients(self, app) -> None:
        from aiohttp import WSCloseCode

        for ws in list(self.clients.values()):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"bench live stopped")


async def serve(live: LiveApp, host: str, port: int, ready: Callable[[str], None], stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; ``ready`` gets the page's URL once the port is bound."""
    from aiohttp import web

    runner = web.AppRunner(live.app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise BenchError(port_problem(exc, host, port)) from exc
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{bound}/")
        await stop.wait()
    finally:
        await runner.cleanup()
        live.executor.shutdown(wait=False, cancel_futures=True)


def port_problem(exc: OSError, host: str, port: int) -> str:
    """The one line for a port that cannot be bound."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (another bench live?); pass --port N or stop the other server"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"not allowed to listen on port {port} (ports below 1024 need root); pass --port 8000"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host (an address of this machine)"


class BackgroundServer:
    """:func:`serve` in a thread of its own, for the tests and ``benchmarks/live_speed.py``: a context
    manager whose value is the page's URL (``port=0`` picks a free port)."""

    def __init__(self, live: LiveApp, host: str = "127.0.0.1", port: int = 0):
        import threading

        self.live, self.host, self.port = live, host, port
        self.url: str | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="bench-live-server", daemon=True)

    def _run(self) -> None:
        async def main():
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve(self.live, self.host, self.port, self._started, self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread by __enter__
            self.error = exc
        finally:
            self._ready.set()

    def _started(self, url: str) -> None:
        self.url = url
        self._ready.set()

    def __enter__(self) -> str:
        self._thread.start()
        self._ready.wait(timeout=60)
        if self.url is None:
            raise self.error or RuntimeError("bench live did not start within 60 s")
        return self.url

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
