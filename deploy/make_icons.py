"""Draw RRA's app icons into static/icons/ (pure Python: zlib + struct, no Pillow).

    .venv/bin/python deploy/make_icons.py

The logo is flat: a white manual page with three text lines and a light-blue chat
bubble, on the accent blue of static/css/app.css. Shapes are signed-distance functions
in unit coordinates, so one description draws every size with antialiased edges. The
output is deterministic: re-running it without changes rewrites identical bytes.

- icon-192.png, icon-512.png: purpose "any", a rounded tile with transparent corners;
- icon-maskable-512.png: purpose "maskable", full-bleed background, the logo inside the
  central safe zone (a circle of 40% of the size) so any mask shape keeps all of it;
- apple-touch-icon.png (180x180): opaque and full-bleed (iOS rounds the corners itself).
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "static" / "icons"

ACCENT = (0x0B, 0x5C, 0xAD)  # --accent (light theme)
BUBBLE = (0x4C, 0x9A, 0xFF)  # --accent (dark theme)
WHITE = (0xFF, 0xFF, 0xFF)

Sdf = Callable[[float, float], float]  # < 0 inside, > 0 outside, in unit coordinates


def rounded_box(x0: float, y0: float, x1: float, y1: float, r: float) -> Sdf:
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 - r, (y1 - y0) / 2 - r

    def sdf(x: float, y: float) -> float:
        qx, qy = abs(x - cx) - hx, abs(y - cy) - hy
        outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
        return outside + min(max(qx, qy), 0.0) - r

    return sdf


def circle(cx: float, cy: float, r: float) -> Sdf:
    return lambda x, y: math.hypot(x - cx, y - cy) - r


# The middle of the logo's bounding box, drawn at the middle of the icon.
LOGO_CENTRE = (0.565, 0.535)


def scaled(sdf: Sdf, scale: float) -> Sdf:
    """The logo's shape, centred in the icon and shrunk by scale."""
    cx, cy = LOGO_CENTRE
    return lambda x, y: sdf((x - 0.5) / scale + cx, (y - 0.5) / scale + cy) * scale


def logo() -> list[tuple[Sdf, tuple[int, int, int]]]:
    """The logo's layers, back to front, in a unit square."""
    layers: list[tuple[Sdf, tuple[int, int, int]]] = [
        (rounded_box(0.26, 0.18, 0.70, 0.80, 0.05), WHITE),  # the page
    ]
    for y, x1 in ((0.31, 0.62), (0.42, 0.62), (0.53, 0.50)):  # lines of text
        layers.append((rounded_box(0.34, y, x1, y + 0.05, 0.025), ACCENT))
    layers += [
        (circle(0.68, 0.70, 0.19), ACCENT),  # a ring that parts the bubble from the page
        (circle(0.68, 0.70, 0.155), BUBBLE),  # the chat bubble
    ]
    layers += [(circle(0.68 + dx, 0.70, 0.027), WHITE) for dx in (-0.075, 0.0, 0.075)]
    return layers


def render(size: int, *, maskable: bool, scale: float) -> bytes:
    """RGBA rows (each preceded by its PNG filter byte, 0) for one icon."""
    tile = rounded_box(0.0, 0.0, 1.0, 1.0, 0.0 if maskable else 0.22)
    layers = [(tile, ACCENT)]
    layers += [(scaled(sdf, scale), colour) for sdf, colour in logo()]
    rows = bytearray()
    for py in range(size):
        rows.append(0)
        y = (py + 0.5) / size
        for px in range(size):
            x = (px + 0.5) / size
            r = g = b = a = 0.0  # premultiplied
            for sdf, (cr, cg, cb) in layers:
                cover = min(max(0.5 - sdf(x, y) * size, 0.0), 1.0)
                if cover:
                    r = cr * cover + r * (1 - cover)
                    g = cg * cover + g * (1 - cover)
                    b = cb * cover + b * (1 - cover)
                    a = cover + a * (1 - cover)
            if a:
                rows += bytes((round(r / a), round(g / a), round(b / a), round(a * 255)))
            else:
                rows += b"\0\0\0\0"
    return bytes(rows)


def png(size: int, rgba_rows: bytes, *, opaque: bool) -> bytes:
    if opaque:  # drop the alpha channel: RGB, colour type 2
        stride = 1 + size * 4
        out = bytearray()
        for row in range(size):
            line = rgba_rows[row * stride : (row + 1) * stride]
            out.append(line[0])
            for i in range(1, len(line), 4):
                out += line[i : i + 3]
        data, colour_type = bytes(out), 2
    else:
        data, colour_type = rgba_rows, 6

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(data, 9))
        + chunk(b"IEND", b"")
    )


ICONS = {
    # name: (size, maskable / full-bleed, logo scale)
    "icon-192.png": (192, False, 0.9),
    "icon-512.png": (512, False, 0.9),
    "icon-maskable-512.png": (512, True, 0.78),
    "apple-touch-icon.png": (180, True, 0.85),
}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (size, full_bleed, scale) in ICONS.items():
        data = png(size, render(size, maskable=full_bleed, scale=scale), opaque=full_bleed)
        (OUT / name).write_bytes(data)
        print(f"{OUT / name}: {size}x{size}, {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
