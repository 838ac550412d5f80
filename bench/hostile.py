"""Hostile text: time of extraction (in its child process, default limits) and chunking
(in the worker itself, no time limit) on pathological inputs, and the two regular
expressions that used to backtrack, old against new, on the same input.

    .venv/bin/python bench/hostile.py [--mb 1]

Prints numbers; it is not a test. Needs no database.

    .venv/bin/python bench/hostile.py clients [--slow 300] [--readers 300] ...

measures hostile clients instead (slow headers, idle stream readers; with and without
the front server): bench/hostile_clients.py.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OLD_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
OLD_BREAK = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\n")


def inputs(size: int) -> dict[str, str]:
    return {
        "heading padded with spaces": "# a" + " " * size + "b\n",
        "dots": "." * size,
        "bangs then quotes": ("!" * 1000 + "'" * 1000) * (size // 2000),
        "one line of words": "rail " * (size // 5),
        "list items": "- x\n" * (size // 4),
        "headings": "# h\n" * (size // 4),
        "table rows": "| a | b |\n" * (size // 10),
        "fences": "```\n" * (size // 4),
        "pipes": "|" * size,
    }


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    from documents.chunking import _BREAK, chunk_extraction
    from documents.extraction import ExtractionFailed, Limits, extract_file
    from documents.extraction.text import _atx_heading

    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=1.0, help="size of each input")
    args = parser.parse_args()
    size = int(args.mb * 1024 * 1024)

    def count_tokens(text: str) -> int:
        return len(text.split()) + len(text) // 8

    print(f"{'input':28} {'chars':>9} {'extract s':>10} {'chunk s':>8} {'chunks':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for name, text in inputs(size).items():
            path = Path(folder) / "input.md"
            path.write_text(text)
            try:
                extract_s, extraction = timed(extract_file, path, "text/markdown", limits=Limits())
            except ExtractionFailed as exc:
                print(f"{name:28} {len(text):9} {exc.reason}")
                continue
            chunk_s, drafts = timed(
                chunk_extraction,
                extraction,
                target_tokens=200,
                overlap_tokens=0,
                count_tokens=count_tokens,
            )
            print(f"{name:28} {len(text):9} {extract_s:10.2f} {chunk_s:8.2f} {len(drafts):7}")

    print("\nold and new pattern, same input (seconds)")
    for spaces in (5_000, 10_000, 20_000):
        line = "# a" + " " * spaces + "b"
        old_s, _ = timed(OLD_ATX.match, line)
        new_s, _ = timed(_atx_heading, line)
        print(f"  ATX heading, {spaces:>6} spaces     old {old_s:7.3f}  new {new_s:7.4f}")
    for dots in (2_000, 20_000):
        text = "." * dots
        old_s, _ = timed(OLD_BREAK.findall, text)
        new_s, _ = timed(_BREAK.findall, text)
        print(f"  sentence breaks, {dots:>6} dots  old {old_s:7.3f}  new {new_s:7.4f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["clients"]:
        from bench import hostile_clients

        hostile_clients.main(sys.argv[2:])
    else:
        main()
