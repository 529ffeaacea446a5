"""bench live end to end: frames per second and latency of a camera stream through the real server.

Starts ``bench live`` (a child process, as a user starts it), connects over its WebSocket as the page does,
and plays a camera: 640x480 frames of one synthetic face at ``--camera-fps`` (0 = a new frame whenever
one is wanted). As the page does, it sends the newest camera frame (a JPEG) only once the previous one is
answered, so the frames the camera made meanwhile are dropped, not queued. Prints one JSON line:

- ``fps``: answered frames per second; ``frames``: made by the camera, sent, answered, dropped;
- ``latency_ms``: p50/p95 from sending a frame to its answer (``round_trip``) and from the camera making
  it to its answer (``age``, what a viewer sees);
- ``stage_ms``: the server's mean milliseconds per stage (decode, detect, preprocess, predict, draw);
- ``server_cpu_ms_per_frame``: CPU time the server process spent per answered frame (all its threads;
  Linux), a figure a busy machine changes less than the wall-clock ones: below ~41 ms a frame, an idle
  core could answer 24 frames/s.

    python benchmarks/live_speed.py --run RUN_ID [--tracking-uri URI] [--seconds 20] [--camera-fps 30]
    python benchmarks/live_speed.py --model model.keras
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

URL_LINE = re.compile(r"bench live: open (http://\S+)")


def camera_frames(width: int, height: int, count: int = 8) -> list[bytes]:
    """JPEG frames (quality 80, as the page sends) of one synthetic face moving a little."""
    from bench.data.synthetic import face_frame
    from bench.live.frames import encode_jpeg

    side = height * 3 // 10
    return [
        encode_jpeg(face_frame(width, height, top=height // 5, left=width // 3 + 3 * i, side=side))
        for i in range(count)
    ]


def start_server(model_args: list[str]) -> tuple[subprocess.Popen, str]:
    """``bench live --port 0`` in a child process; returns it and its page's URL once it listens."""
    command = [sys.executable, "-m", "bench.cli", "live", *model_args, "--port", "0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in child.stderr:
        lines.append(line)
        found = URL_LINE.search(line)
        if found:  # the rest (connections, faults) is drained, so that a full pipe never stalls the server
            threading.Thread(target=child.stderr.read, daemon=True).start()
            return child, found.group(1)
    child.wait()
    raise SystemExit("bench live did not start:\n" + "".join(lines))


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc; None elsewhere."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def play(url: str, frames: list[bytes], seconds: float, warmup: int, camera_fps: float, cpu=None) -> dict:
    """Play the camera against the server at ``url``; ``cpu``: a callable giving the server's CPU seconds."""
    import aiohttp

    period = 1.0 / camera_fps if camera_fps > 0 else 0.0
    round_trip, age, stages = [], [], []
    made = sent = answered = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url.replace("http", "ws", 1) + "ws") as ws:
        hello = await ws.receive_json()
        start = time.perf_counter()
        last_taken = -1
        for index in itertools.count():
            now = time.perf_counter()
            if period:  # the camera's newest frame; wait for a new one if the last was already taken
                newest = int((now - start) / period)
                if newest <= last_taken:
                    await asyncio.sleep((last_taken + 1) * period - (now - start))
                    newest = last_taken + 1
                made_at, last_taken = start + newest * period, newest
            else:
                made_at = now
            sent_at = time.perf_counter()
            await ws.send_bytes(frames[index % len(frames)])
            answer = await ws.receive_json()
            done = time.perf_counter()
            if answer["type"] != "result" or len(answer["faces"]) != 1:
                raise SystemExit(f"unexpected answer: {answer}")
            if index == warmup:
                cpu_from = cpu() if cpu else None
                measured_from, made_before = sent_at, (int((sent_at - start) / period) if period else index)
            if index >= warmup:
                sent += 1
                answered += 1
                round_trip.append((done - sent_at) * 1000)
                age.append((done - made_at) * 1000)
                stages.append(answer["stage_ms"])
                if done - measured_from >= seconds:
                    break
        elapsed = done - measured_from
        cpu_to = cpu() if cpu else None
        made = (int((done - start) / period) - made_before) if period else sent

    def pct(values):
        return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}

    return {
        "fps": round(answered / elapsed, 1),
        "frames": {"camera": made, "sent": sent, "answered": answered, "dropped": max(0, made - sent)},
        "latency_ms": {"round_trip": pct(round_trip), "age": pct(age)},
        "stage_ms": {k: round(float(np.mean([s[k] for s in stages])), 2) for k in stages[0]},
        "server_cpu_ms_per_frame": round((cpu_to - cpu_from) * 1000 / answered, 1)
        if cpu_from is not None and cpu_to is not None
        else None,
        "seconds": round(elapsed, 1),
        "camera_fps": camera_fps,
        "classes": len(hello["classes"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a bench run's id (its model.keras)")
    parser.add_argument("--model", help="a .keras file")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time after the warm-up")
    parser.add_argument("--warmup", type=int, default=20, help="frames answered before timing starts")
    parser.add_argument("--camera-fps", type=float, default=30.0, help="the camera's rate (0: as fast as answered)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    model_args = ["--run", args.run] if args.run else ["--model", args.model] if args.model else []
    if args.tracking_uri:
        model_args += ["--tracking-uri", args.tracking_uri]
    frames = camera_frames(args.width, args.height)
    child, url = start_server(model_args)
    try:
        cpu = lambda: process_cpu_seconds(child.pid)  # noqa: E731
        figures = asyncio.run(play(url, frames, args.seconds, args.warmup, args.camera_fps, cpu))
    finally:
        child.terminate()
        child.wait(timeout=30)
    print(json.dumps({"size": f"{args.width}x{args.height}", "cpus": os.cpu_count(), **figures}))


if __name__ == "__main__":
    main()
