"""Seeing a run: its timeline as one HTML file, and a live dashboard (a wing of the package)."""
