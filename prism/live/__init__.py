"""The live runner's logic: one trade cycle (:mod:`.cycle`) and its steps (:mod:`.steps`),
deployments (:mod:`.deployments`), pre-trade risk and the circuit breaker (:mod:`.risk`),
reconciliation (:mod:`.reconcile`), replay over history (:mod:`.replay`), live-against-backtest
drift (:mod:`.drift`), alerts (:mod:`.alerts`) and what ``prism runner serve`` needs besides the
flows (:mod:`.serving`). Prefect flows in ``runner/`` only call these.

May import: every package below it (``core`` … ``registry``, ``ledger``, ``brokers``).
"""
