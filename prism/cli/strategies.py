"""``prism strategies``: the strategy library and the strategies registered by entry point,
with their parameters. It reads the classes only (names, dataclass fields, docstrings): the
strategy modules bind numpy and pandas lazily (:mod:`prism.core.lazy`), so listing them
imports neither, nor the settings.
"""

from __future__ import annotations

import dataclasses

from prism.cli.common import console, errors, folding_table


def strategies_command() -> None:
    """List the strategies (built in and registered by research/) with their parameters."""
    from prism.strategies import ENABLE_HINT, deep_available, listed_strategies

    found, broken = listed_strategies()
    table = folding_table("strategy", "parameters (default)", "what it does")
    for name, cls in sorted(found.items()):
        params = ", ".join(
            f"{f.name}" + ("" if f.default is dataclasses.MISSING else f"={f.default!r}")
            for f in dataclasses.fields(cls)
        )
        what = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        if getattr(cls, "extra", None) == "deep" and not deep_available():
            what = f"UNAVAILABLE ({ENABLE_HINT}). {what}"
        table.add_row(name, params, what)
    for name, reason in sorted(broken.items()):
        table.add_row(name, "?", f"CANNOT LOAD: {reason}")
    console.print(table)
    for reason in broken.values():
        errors.print(f"[bold yellow]warning:[/] {reason}", highlight=False, soft_wrap=True)
