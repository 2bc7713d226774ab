"""Compiled loops marked with ``lazy_njit`` import numba only when first called, and compiled
functions of one module that call each other still compile together."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

MODULE = """
import numpy as np
from prism.core.jit import lazy_njit


@lazy_njit(cache=False)
def inner(x):
    return x * 2.0


@lazy_njit(cache=False)
def outer(values):
    total = 0.0
    for v in values:
        total += inner(v)
    return total
"""


def test_numba_is_imported_at_the_first_call_and_nested_calls_compile(tmp_path) -> None:
    (tmp_path / "marked.py").write_text(MODULE)
    probe = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import marked\n"
        "before = 'numba' in sys.modules\n"
        "value = marked.outer(np.arange(5.0))\n"
        "compiled = type(marked.__dict__['outer']).__name__\n"
        "print(before, value, 'numba' in sys.modules, compiled)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )

    before, value, after, compiled = done.stdout.split()
    assert done.returncode == 0, done.stderr
    assert before == "False" and after == "True"
    assert float(value) == float(np.arange(5.0).sum() * 2)
    assert compiled == "CPUDispatcher"
