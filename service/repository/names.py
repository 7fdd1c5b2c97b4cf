"""Model names and paths from untrusted places (a URL, a folder listing): validated before any file is opened.

A model name is a folder name of the repository: letters, digits, ``.``, ``_``, ``-`` (at most 64, not
starting with a dot, never ``..``); a version is a positive integer. A path is used only if, with every
symlink resolved, it is still inside the repository.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InvalidInput

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_PATTERN = NAME.pattern
MAX_VERSION = 2**31 - 1


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid model name, or None."""
    if not isinstance(name, str) or not name:
        return "a model name must be a non-empty string"
    if "/" in name or "\\" in name or "\x00" in name:
        return "a model name holds no path separators"
    if ".." in name:
        return "a model name holds no '..'"
    if not NAME.match(name):
        return f"a model name is 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit ({NAME_PATTERN})"
    return None


def check_name(name: str, field: str = "model") -> str:
    problem = name_problem(name)
    if problem:
        raise InvalidInput(f"{field}: {problem}", field=field, reason=problem)
    return name


def parse_version(text) -> int | None:
    """A version folder's name -> its number (``"3"`` -> 3); None for anything else ("03" included)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text if 1 <= text <= MAX_VERSION else None
    if isinstance(text, str) and text.isdigit() and text.isascii() and not text.startswith("0"):
        value = int(text)
        return value if value <= MAX_VERSION else None
    return None


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with every symlink resolved, is inside ``root`` (also resolved)."""
    try:
        return Path(path).resolve(strict=True).is_relative_to(Path(root).resolve(strict=True))
    except (OSError, RuntimeError):  # missing, a symlink loop
        return False
