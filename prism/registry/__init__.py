"""The model registry: the promotion gates (:mod:`.gates`), promotion, aliases, rollback and
loading (:mod:`.promotion`), the checks a model version passes before it trades
(:mod:`.checks`) and lineage from an order back to its notebook run (:mod:`.lineage`).

May import: ``prism.core``, ``prism.db``, ``prism.data``, ``prism.features``,
``prism.strategies``, ``prism.backtest``, ``prism.research``.
"""
