"""Brokers: the port the live runner sends orders to (:mod:`.port`), the paper broker
(:mod:`.paper`), and adapters to real venues: any ccxt exchange (:mod:`.ccxt`) and Alpaca
(:mod:`.alpaca`), with what they share (:mod:`.exchange_orders`). The code that sends an order
to a venue lives here.

May import: ``prism.core``, ``prism.db``, ``prism.data``, ``prism.ledger``, and
``prism.backtest.portfolio`` (the fill and commission rules the paper broker shares with the
backtest).
"""
