"""Reading values people type: on the command line, in a notebook's parameters, in specs."""

from __future__ import annotations

import ast
from typing import Any


def read_literal(text: str) -> Any:
    """Return ``text`` as the Python literal it spells (``10``, ``2.5``, ``True``, ``[1, 2]``),
    or the text itself when it spells none (``SPX``, ``true``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
