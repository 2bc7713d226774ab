"""The Prism API: a versioned REST and WebSocket service (FastAPI), thin over the library."""
