"""Text colours of the theme meet WCAG AA (4.5:1) on their backgrounds, light and dark."""

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "static" / "css" / "app.css").read_text()


def _palette(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", block))


LIGHT = _palette(CSS[: CSS.index("@media (prefers-color-scheme: dark)")])
DARK = {**LIGHT, **_palette(CSS[CSS.index("@media (prefers-color-scheme: dark)") :].split("}")[0])}


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _ratio(a: str, b: str) -> float:
    high, low = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("palette", [LIGHT, DARK], ids=["light", "dark"])
@pytest.mark.parametrize(
    ("fg", "bg"),
    [
        ("fg", "bg"),
        ("fg", "card"),
        ("muted", "bg"),
        ("muted", "card"),
        ("accent", "card"),
        ("accent", "bg"),
        ("accent-fg", "accent"),
        ("danger", "card"),
        ("danger", "bg"),
    ],
)
def test_text_colours_have_enough_contrast(palette, fg, bg):
    assert _ratio(palette[fg], palette[bg]) >= 4.5, (fg, bg, palette[fg], palette[bg])
