"""Market data: sources, validation with quarantine, and the OHLCV store."""
