"""What a browser sends as a frame, checked before it is decoded: bytes count, image type (JPEG or PNG,
by their signatures) and pixel size (read from the header by Pillow, which decodes nothing yet), so a
malformed or oversized frame costs a short error message, never a large allocation or a crash."""

from __future__ import annotations

import io

import numpy as np

from bench.errors import BenchError

MAX_FRAME_BYTES = 2_000_000  # a 640x480 JPEG at quality 0.8 is ~50 kB; a 1920x1080 one ~300 kB
MAX_FRAME_SIDE = 1920
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


class BadFrame(BenchError):
    """A frame the server refuses: the message is shown on the page; the connection stays open.
    ``kind`` (bytes, type, malformed, pixels, decode) groups the messages that differ only in numbers."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def decode_frame(
    data: bytes, max_bytes: int = MAX_FRAME_BYTES, max_side: int = MAX_FRAME_SIDE, color: bool = True
) -> np.ndarray:
    """A JPEG or PNG frame as a BGR (or, ``color=False``, grayscale) uint8 array, or :class:`BadFrame`
    naming what is wrong. Grayscale is all the face pipeline reads, and a JPEG decodes to it faster
    (no colour upsampling and conversion): the server asks for colour only to record annotated video."""
    import cv2
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise BadFrame(
            f"a frame of {len(data):,} bytes is over the {max_bytes:,}-byte limit; send a smaller frame "
            "(640x480 JPEG is ~50 kB)",
            "bytes",
        )
    kind = next((name for magic, name in SIGNATURES.items() if data.startswith(magic)), None)
    if kind is None:
        raise BadFrame(f"a frame must be a JPEG or PNG image; received {len(data):,} bytes of something else", "type")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadFrame(f"a malformed {kind} frame (its header cannot be read); send whole images", "malformed") from exc
    if kind == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):  # OpenCV would grey out the rest
        raise BadFrame("a truncated JPEG frame (no end marker); send whole images", "decode")
    if max(width, height) > max_side or min(width, height) < 1:
        raise BadFrame(f"a {width}x{height} frame is over the {max_side}-pixel limit per side; send 640x480", "pixels")
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if frame is None or frame.shape[:2] != (height, width):
        raise BadFrame(f"a {kind} frame whose pixels could not be decoded (truncated?); send whole images", "decode")
    return frame


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """A BGR frame as JPEG bytes: how a local source's frames travel to the page."""
    import cv2

    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BadFrame("OpenCV could not encode a source frame as JPEG", "encode")
    return data.tobytes()
