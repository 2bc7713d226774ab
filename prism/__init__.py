"""Prism: notebook-first quant research with a promotion-to-production runner.

One package per domain, in the order data flows (each imports only the ones before it):
``core`` (settings, errors, events) → ``db`` (server, migrations) → ``data`` (sources,
validation, store) → ``features`` → ``strategies`` → ``backtest`` → ``research`` (notebook runs,
MLflow) → ``registry`` (gates, promotion) → ``ledger`` (the books) → ``brokers`` (where orders
go) → ``live`` (the trade cycle) → ``monitoring`` (the read side) → ``cli``.
"""
