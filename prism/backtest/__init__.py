"""Backtesting: the engine (:mod:`.engine`) and its compiled loop (:mod:`.simulation`), the
rebalancing rule shared with the live runner (:mod:`.portfolio`), metrics (:mod:`.metrics`),
in-process parameter sweeps (:mod:`.sweep`), the statistics that judge a backtest
(walk-forward, purged CV, deflated Sharpe, look-ahead: :mod:`.validation`), plots and the tear
sheet (:mod:`.plots`, :mod:`.tearsheet`).

May import: ``prism.core``, ``prism.data``, ``prism.features``, ``prism.strategies``.
"""
