"""Prefect flows that run Prism live: thin orchestration over :mod:`prism.live.steps`."""
