"""Prism: notebook-first quant research with a promotion-to-production runner.

A map for newcomers, in the order data flows:

- ``config``: typed settings (``PRISM_*``); ``errors``: the exception hierarchy.
- ``db``: the embedded PostgreSQL server, engines, Alembic migrations (``migrations/``).
- ``data``: the bar frame, sources, validation with quarantine, the COPY-upsert store.
- ``strategies``: the strategy contract and registry; ``portfolio``: the rebalancing and
  execution rules the backtest and the live runner share.
- ``backtest``, ``metrics``, ``plots``: research; ``tracking``, ``research``: MLflow runs and
  papermill; ``strategy_model``: strategies as pyfunc models; ``registry``: gates and aliases.
- ``ledger``, ``broker``, ``live``: the live trading cycle and its books.
- ``reporting``: the dashboard's read side; ``demo``, ``cli``: the command line.
"""
