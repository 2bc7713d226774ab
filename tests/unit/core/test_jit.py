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


MANY = "from prism.core.jit import lazy_njit\n\n" + "".join(
    f"\n@lazy_njit(cache=False)\ndef f{k}(x):\n    return x + {k}\n" for k in range(300)
)


def test_threads_calling_at_once_wait_for_the_compiled_functions(tmp_path) -> None:
    (tmp_path / "many.py").write_text(MANY)
    probe = (
        "import sys, threading\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import numba, many\n"
        "start = threading.Barrier(8)\n"
        "results, errors = [], []\n"
        "def call():\n"
        "    start.wait()\n"
        "    try:\n"
        "        results.append(many.f299(1.0))\n"
        "    except RecursionError as err:\n"
        "        errors.append(type(err).__name__)\n"
        "threads = [threading.Thread(target=call) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(sorted(results), errors)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )

    assert done.stdout.strip() == f"{[300.0] * 8} []", done.stdout + done.stderr
