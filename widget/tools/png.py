"""A small PNG writer and checker (zlib + struct), enough for the widget's generated logos.

The logos are drawn from signed distance functions: each shape says how far a pixel centre is
from its edge, and a one-pixel ramp across the edge gives anti-aliasing without supersampling.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence

SIGNATURE = b"\x89PNG\r\n\x1a\n"

Rgb = tuple[int, int, int]
Distance = Callable[[float, float], float]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_rgba(width: int, height: int, pixels: Sequence[bytes]) -> bytes:
    """``pixels`` holds one ``bytes`` row of ``4 * width`` RGBA values per line."""
    if len(pixels) != height or any(len(row) != 4 * width for row in pixels):
        raise ValueError("pixel rows do not match the image size")
    raw = b"".join(b"\x00" + row for row in pixels)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a well-formed PNG; ``ValueError`` says what is wrong otherwise."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file (the signature is missing)")
    pos, size, seen_end = len(SIGNATURE), None, False
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated chunk header")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"truncated {kind.decode('latin-1')} chunk")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"corrupt {kind.decode('latin-1')} chunk (bad CRC)")
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        if kind == b"IEND":
            seen_end = True
            break
        pos += 12 + length
    if size is None or not seen_end:
        raise ValueError("incomplete PNG (IHDR or IEND missing)")
    return size


def relative_luminance(rgb: Rgb) -> float:
    """WCAG 2 relative luminance, for the marketplace's icon-contrast rule."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: Rgb, b: Rgb) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# --- shapes: distance in pixels, negative inside -------------------------------------------


def rounded_rect(cx: float, cy: float, half_w: float, half_h: float, radius: float) -> Distance:
    def distance(x: float, y: float) -> float:
        qx = abs(x - cx) - (half_w - radius)
        qy = abs(y - cy) - (half_h - radius)
        outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
        return outside + min(max(qx, qy), 0.0) - radius

    return distance


def circle(cx: float, cy: float, radius: float) -> Distance:
    return lambda x, y: math.hypot(x - cx, y - cy) - radius


def convex_polygon(points: Sequence[tuple[float, float]]) -> Distance:
    """Distance to a convex polygon given clockwise in image coordinates (y grows downwards).

    Outside, near the corners, this is the distance to the nearest edge *line*, which is
    slightly short; the shapes here only use it under the one-pixel edge ramp."""
    edges = []
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        length = math.hypot(x2 - x1, y2 - y1)
        # Outward normal of a clockwise (in y-down space) edge.
        edges.append((x1, y1, (y2 - y1) / length, -(x2 - x1) / length))
    return lambda x, y: max((x - ex) * nx + (y - ey) * ny for ex, ey, nx, ny in edges)


def union(*shapes: Distance) -> Distance:
    return lambda x, y: min(shape(x, y) for shape in shapes)


def render(width: int, height: int, layers: Sequence[tuple[Distance, Rgb]]) -> bytes:
    """Paint ``layers`` (shape, colour) bottom to top over a transparent canvas."""
    rows = []
    for py in range(height):
        row = bytearray()
        y = py + 0.5
        for px in range(width):
            x = px + 0.5
            r = g = b = 0.0
            a = 0.0
            for shape, (cr, cg, cb) in layers:
                cover = min(max(0.5 - shape(x, y), 0.0), 1.0)
                if cover <= 0.0:
                    continue
                # "over" compositing with straight alpha
                out_a = cover + a * (1 - cover)
                r = (cr * cover + r * a * (1 - cover)) / out_a
                g = (cg * cover + g * a * (1 - cover)) / out_a
                b = (cb * cover + b * a * (1 - cover)) / out_a
                a = out_a
            row += bytes((round(r), round(g), round(b), round(a * 255)))
        rows.append(bytes(row))
    return encode_rgba(width, height, rows)
