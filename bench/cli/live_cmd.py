"""``bench live``: the emotions of the faces in a camera's feed, in a local web page."""

from __future__ import annotations

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import examples, face_options, is_onnx_path, load_saved_model, saved_model_options

EXAMPLES = examples(
    "bench live --run RUN_ID",
    "bench live --model model.keras --port 8080",
    "bench live --model fer.onnx",
    "bench live --run RUN_ID --source 0",
    "bench live --run RUN_ID --source clip.mp4 --record live-out/",
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command(epilog=EXAMPLES)
@saved_model_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--source",
    default=None,
    metavar="DEVICE|FILE|URL",
    help="Frames from this machine: a camera number (0) or a video file or URL, instead of the browser's camera.",
)
@click.option(
    "--record",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for each client's predictions (.jsonl) and annotated video (.mp4); nothing is written without it.",
)
@face_options
@friendly_errors
def live(run_id, model_path, tracking_uri, host, port, source, record, tta, window, **options):
    """Serve a page that shows each face's box, emotion and confidence as the camera plays.

    Open the printed address in a browser: the page sends its camera's frames here (or shows --source's)
    one at a time, so a slow model lowers the frame rate and never builds a backlog. Over SSH, forward
    the port (ssh -L 8000:127.0.0.1:8000 HOST) and open http://localhost:8000 on your own machine.
    Connections and faults are printed here, one line each; Ctrl-C stops the server."""
    import asyncio
    from pathlib import Path

    from bench.cli.predict_cmd import tta_settings
    from bench.inference.classifier import FaceClassifier
    from bench.inference.frames import FaceOptions, FramePipeline
    from bench.live.record import check_record_dir
    from bench.live.server import LiveApp, LiveSettings, serve
    from bench.live.sources import LatestFrameSource, parse_source

    record_dir = check_record_dir(Path(record)) if record else None
    if not is_onnx_path(model_path):  # ONNX Runtime runs it: importing TensorFlow would only cost seconds
        load_tensorflow()
    model = load_saved_model(run_id, model_path, tracking_uri)
    pipeline = FramePipeline(FaceClassifier(model, *tta_settings(tta, run_id, tracking_uri)), FaceOptions(**options))
    warm_up(pipeline)
    reader = LatestFrameSource(parse_source(source)).start() if source else None
    echo = lambda line: click.echo(line, err=True)  # noqa: E731 - the server's terminal lines
    app = LiveApp(pipeline, LiveSettings(window=window, record=record_dir), reader, log=echo)

    def ready(url: str) -> None:
        camera = reader.name if reader else "the browser's camera"
        echo(f"bench live: open {url} (frames from {camera}); Ctrl-C stops it")
        if host not in LOOPBACK and reader is None:
            echo(
                f"note: browsers give a camera only to https:// or localhost pages; from another machine use "
                f"an SSH tunnel (ssh -L {port}:127.0.0.1:{port} HOST, then http://localhost:{port}) or --source"
            )

    async def main():
        await serve(app, host, port, ready, asyncio.Event())

    try:
        asyncio.run(main())
    finally:
        if reader is not None:
            reader.stop()


def warm_up(pipeline) -> None:
    """Trace the compiled model call and load the cascade before the first browser connects, so its
    first frame takes milliseconds, not the seconds of a trace."""
    import numpy as np

    from bench import FACE_SIZE

    pipeline(np.zeros((480, 640, 3), np.uint8))
    pipeline.classifier(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))
