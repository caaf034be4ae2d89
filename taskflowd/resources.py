"""Where the files shipped with the package are: `taskflowd/web` (the dashboard's
templates and static files) is package data, so a checkout, an editable install and an
installed wheel all find it in the same place."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder `name` inside the package (`web`)."""
    return _PACKAGE / name
