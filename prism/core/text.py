"""Text in and out: reading values people type (on the command line, in a notebook's parameters,
in specs), and the console command output is written to."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from rich.console import Console


def read_literal(text: str) -> Any:
    """Return ``text`` as the Python literal it spells (``10``, ``2.5``, ``True``, ``[1, 2]``),
    or the text itself when it spells none (``SPX``, ``true``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


PIPED_WIDTH = 160
"""Columns of command output written to a pipe or file (rich's own default there is 80, which
folds timestamps in tables); ``COLUMNS`` overrides it."""


class _OutputEnviron(Mapping[str, str]):
    """``os.environ`` as a rich console reads it, read afresh on every lookup, with ``COLUMNS``
    defaulting to :data:`PIPED_WIDTH` while the console's stream is not a terminal."""

    def __init__(self, stream: Callable[[], TextIO]) -> None:
        self.stream = stream

    def __getitem__(self, key: str) -> str:
        if key == "COLUMNS" and key not in os.environ and not self.stream().isatty():
            return str(PIPED_WIDTH)
        return os.environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def output_console(stderr: bool = False) -> Console:
    """Return a rich console for command output: the terminal's width, ``COLUMNS``, or
    :data:`PIPED_WIDTH` columns when the output goes to a pipe or a file."""
    stream = (lambda: sys.stderr) if stderr else (lambda: sys.stdout)
    return Console(stderr=stderr, _environ=_OutputEnviron(stream))
