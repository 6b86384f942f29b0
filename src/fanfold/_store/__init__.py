"""The run stores: memory, SQLite (the embedded default) and Postgres, each implementing
:class:`fanfold._records.Store`. :func:`fanfold._records.open_store` picks one from a target."""
