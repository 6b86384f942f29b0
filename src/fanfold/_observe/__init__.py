"""Observability wings: a run's traces and metrics (OpenTelemetry, in :mod:`._otel`), loaded by
name (``fanfold._tracing``) only when a run asks for them; the core never imports them."""
