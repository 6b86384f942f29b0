"""Seeing a run (a wing of the package): its traces and metrics (OpenTelemetry, in
:mod:`._otel`, loaded by name through ``fanfold._tracing`` only when a run asks for them), its
timeline as one HTML file (:mod:`._timeline`), and a live dashboard (:mod:`._dashboard`). The
core never imports them."""
