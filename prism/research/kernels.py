"""A warm kernel: one started Jupyter kernel that executes notebook after notebook, so a sweep
worker pays the kernel's start and the notebook's imports once instead of once per trial.

papermill hands a kernel manager it is given to nbclient, which then neither starts nor shuts
down that kernel. Between notebooks :meth:`WarmKernel.reset` clears the kernel's namespace
(``%reset -f``): each notebook runs every cell again from an empty namespace, and only the
imported modules stay loaded. After a failed notebook the kernel is shut down instead and the
next notebook gets a new one, so nothing a half-run notebook left behind reaches the next.
A ``prelude`` runs once on each new kernel (the resident research worker keeps a PNG renderer
open there, :func:`prism.backtest.tearsheet.keep_png_renderer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_core.utils import run_sync

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

KERNEL_NAME = "python3"
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
RESET = "%reset -f"
READY_SECONDS = 60.0


class WarmKernel:
    """A kernel started on first use in ``cwd`` and kept for the next notebook."""

    def __init__(self, cwd: Path, prelude: str | None = None) -> None:
        self.cwd = cwd
        self.prelude = prelude
        self.manager: AsyncKernelManager | None = None
        self.notebooks = 0

    def ready(self) -> AsyncKernelManager:
        """Return the manager of a running kernel, starting one if there is none."""
        if self.manager is None or not run_sync(self.manager.is_alive)():
            from jupyter_client.manager import AsyncKernelManager

            self.close()
            manager = AsyncKernelManager(kernel_name=KERNEL_NAME)
            run_sync(manager.start_kernel)(cwd=str(self.cwd), extra_arguments=KERNEL_ARGUMENTS)
            self.manager = manager
            if self.prelude:
                run_sync(_execute)(manager, self.prelude)
        self.notebooks += 1
        return self.manager

    def reset(self) -> None:
        """Empty the kernel's namespace for the next notebook (its imports stay loaded)."""
        if self.manager is not None:
            run_sync(_execute)(self.manager, RESET)

    def pid(self) -> int | None:
        """Return the running kernel's process id (None when there is no kernel)."""
        if self.manager is None or self.manager.provisioner is None:
            return None
        pid = getattr(self.manager.provisioner, "pid", None)
        return pid if isinstance(pid, int) else None

    def close(self) -> None:
        """Shut the kernel down (the next :meth:`ready` starts a new one)."""
        if self.manager is not None:
            manager, self.manager = self.manager, None
            run_sync(manager.shutdown_kernel)(now=True)


async def _execute(manager: AsyncKernelManager, code: str) -> None:
    """Run ``code`` silently on the kernel and wait for its reply."""
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=READY_SECONDS)
        await client.execute_interactive(code, silent=True, store_history=False)
    finally:
        client.stop_channels()
