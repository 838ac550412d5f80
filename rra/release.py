"""Which release is running: RELEASE, else the git commit, else the package version."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_sha(root: Path = ROOT) -> str | None:
    """The checked-out commit, read from .git without running git (None when unknown)."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if _SHA.match(head):
            return head
        if not head.startswith("ref: "):
            return None
        ref = head[5:]
        for base in (git, _common_dir(git)):
            ref_file = base / ref
            if ref_file.is_file():
                value = ref_file.read_text().strip()
                return value if _SHA.match(value) else None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    sha, _, name = line.partition(" ")
                    if name == ref and _SHA.match(sha):
                        return sha
    except (OSError, IndexError):
        return None
    return None


def _common_dir(git: Path) -> Path:
    common = git / "commondir"
    if common.is_file():
        return (git / common.read_text().strip()).resolve()
    return git


def package_version(root: Path = ROOT) -> str | None:
    try:
        with open(root / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None


def detect_release(environ=os.environ) -> str:
    """RELEASE when set; else rra@<git sha>; else rra@<pyproject version>."""
    explicit = (environ.get("RELEASE") or "").strip()
    if explicit:
        return explicit
    sha = git_sha()
    if sha:
        return f"rra@{sha[:12]}"
    return f"rra@{package_version() or 'unknown'}"
