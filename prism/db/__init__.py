"""Database access: the embedded server, engines, migrations and the schema's tables."""
