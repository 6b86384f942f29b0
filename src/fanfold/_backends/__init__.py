"""Backends: where a leaf's work runs other than the driver (a process pool, a Ray cluster).
Each module is one backend, named in ``fanfold._backend._BACKENDS`` and loaded on first use."""
