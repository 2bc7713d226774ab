"""The source code a strategy runs, pinned by hash.

A logged strategy model carries the source of every module its decisions can run: the module
that defines the strategy's class (Prism's library or a researcher's ``research/`` module) and
every module of :data:`CODE_PACKAGES` (the contract, the library, the indicators). The manifest
maps each module's dotted name to the SHA-256 of its file; :func:`code_hash` folds a manifest
into one hex digest, the model's *code hash*, which the approval records and the model checks
compare before a version trades.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
from pathlib import Path

CODE_PACKAGES = ("prism.strategies", "prism.features")
"""Packages whose every module belongs to a strategy's code."""
MISSING = "missing"
"""The digest a manifest records for a module whose file cannot be found."""


def strategy_modules(strategy_class: type) -> list[str]:
    """Return the dotted names of the modules a strategy of ``strategy_class`` runs, sorted:
    its own module, every module (subpackages too) of :data:`CODE_PACKAGES`, and those the
    class names in a ``code_modules`` attribute (code it runs from outside these packages)."""
    names = {strategy_class.__module__, *getattr(strategy_class, "code_modules", ())}
    for package_name in CODE_PACKAGES:
        package = importlib.import_module(package_name)
        names.add(package_name)
        for found in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            names.add(found.name)
    return sorted(names)


def module_file(name: str) -> Path | None:
    """Return the source file the module ``name`` is imported from here, or None."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def file_digest(path: Path | None) -> str:
    """Return the SHA-256 of the file at ``path`` (:data:`MISSING` when there is none)."""
    if path is None or not path.is_file():
        return MISSING
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed_manifest(modules: list[str]) -> dict[str, str]:
    """Return ``{module: SHA-256}`` of the files ``modules`` import from in this environment."""
    return {name: file_digest(module_file(name)) for name in modules}


def folder_manifest(folder: Path, modules: list[str]) -> dict[str, str]:
    """Return ``{module: SHA-256}`` of the copies of ``modules`` in ``folder`` (one
    ``<module>.py`` each, as :func:`copy_sources` writes them)."""
    return {name: file_digest(folder / f"{name}.py") for name in modules}


def code_hash(manifest: dict[str, str]) -> str:
    """Return one SHA-256 over a manifest's module names and digests."""
    lines = "\n".join(f"{name} {digest}" for name, digest in sorted(manifest.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def copy_sources(modules: list[str], folder: Path) -> dict[str, str]:
    """Copy each module's source to ``folder/<module>.py``; return the manifest of the copies."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in modules:
        source = module_file(name)
        if source is not None:
            (folder / f"{name}.py").write_bytes(source.read_bytes())
    return folder_manifest(folder, modules)


def changed_modules(expected: dict[str, str], found: dict[str, str]) -> list[str]:
    """Return the modules whose digest in ``found`` differs from ``expected``'s, sorted."""
    return sorted(
        name for name in set(expected) | set(found) if expected.get(name) != found.get(name)
    )
