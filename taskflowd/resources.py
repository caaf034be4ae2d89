"""Where the shipped files are: inside the installed package (taskflowd/_data, put there
by the build), or the repository's top-level folders when running from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The `web` or `config` folder."""
    installed = _PACKAGE / "_data" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name
