"""The Ray backend: sync function agents run as tasks on a Ray cluster.

The driver (the process that calls ``ff.run``) keeps the scheduler, the governor and the journal;
each leaf's work becomes one Ray task, so the cluster's CPUs share the run's work while the run's
limits, retries, timeouts, budgets and journal hold as on one machine. A function becomes a Ray
remote function once per run (``num_cpus`` each); its input goes inline, or by reference
(``ray.put``) when it is large; the driver awaits the task's result.

Ray's own task retries are off (``max_retries=0``): a worker or node that dies mid-call raises
:class:`~fanfold.WorkerLost`, which the run's retry policy retries, counted and reported like any
retry. A leaf cancelled (a timeout, a deadline, a failure policy) cancels its task with
``ray.cancel(ref, force=True)``, which kills the worker running it.

Ray is an optional dependency: ``pip install 'fanfold[ray]'``. When fanfold connects, it sets
``RAY_USAGE_STATS_ENABLED=0`` unless it is set already (Ray otherwise reports usage statistics).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Any

from fanfold._backend import Backend, WorkerLost
from fanfold._errors import UsageError

# An input this large (in bytes: str, bytes, arrays) goes to the object store once, by reference.
PUT_OVER = 100_000


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError("backend='ray' needs Ray, which is not installed; pip install 'fanfold[ray]'") from exc
    return ray


class Ray(Backend):
    """Run sync function agents as tasks on a Ray cluster::

        ff.run(ff.map(crunch), rows, backend=ff.Ray(address="10.0.0.5:6379", num_cpus=1))

    ``address`` is a cluster's GCS address (``host:port``, as ``ray start --head`` prints), a Ray
    client address (``ray://host:10001``), ``"auto"``, or None: ``RAY_ADDRESS``, else a local Ray
    that ``ray.init()`` starts for the run. If this process is connected to Ray already, that
    connection is used and left open. ``num_cpus``: the CPUs each call reserves on the cluster.
    ``runtime_env``: Ray's runtime environment for the run's workers, so that they can import
    the functions: a worker imports a function by its module (one defined in ``__main__``, or a
    lambda, travels by value), and Ray puts only the driver's working directory on its path::

        ff.Ray(address, runtime_env={"working_dir": ".", "pip": ["numpy"]})
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1,
        runtime_env: dict[str, Any] | None = None,
        put_over: int = PUT_OVER,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address):
            raise UsageError(f"Ray(address={address!r}): pass 'host:port', 'ray://host:port', 'auto', or None")
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, int | float) or num_cpus < 0:
            raise UsageError(f"Ray(num_cpus={num_cpus!r}): pass the CPUs each call reserves, a number >= 0")
        if importlib.util.find_spec("ray") is None:  # say so now, not once per input
            _import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.runtime_env = runtime_env
        self.put_over = put_over
        self._ray: Any = None
        self._connected = False  # True if this backend called ray.init (and so shuts it down)
        self._remotes: dict[Callable[..., Any], Any] = {}

    def for_run(self) -> Ray:
        return Ray(self.address, num_cpus=self.num_cpus, runtime_env=self.runtime_env, put_over=self.put_over)

    def __repr__(self) -> str:
        return f"Ray(address={self.address!r}, num_cpus={self.num_cpus!r})"

    def _start(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            # Blocks the loop once per run (~0.4 s to connect to a running cluster).
            ray.init(
                address=self.address,
                runtime_env=self.runtime_env,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
            self._connected = True
        self._ray = ray
        return ray

    def _remote(self, fn: Callable[..., Any]) -> Any:
        remote = self._remotes.get(fn)
        if remote is None:
            ray = self._ray or self._start()
            remote = self._remotes[fn] = ray.remote(num_cpus=self.num_cpus, max_retries=0)(fn)
        return remote

    async def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        remote = self._remote(fn)
        ray = self._ray
        value = args[0]
        if self._large(value):
            args = (ray.put(value), *args[1:])
        try:
            ref = remote.remote(*args)
        except TypeError as exc:  # cloudpickle could not serialise the function or an argument
            raise UsageError(
                f"the function agent {getattr(fn, '__qualname__', fn)!r} cannot run on backend='ray': {exc}; "
                "keep what it uses picklable (define it at module level, and open clients inside it)"
            ) from exc
        try:
            return await ref
        except BaseException as exc:
            raise self._mapped(exc, ref, fn) from None

    def _large(self, value: Any) -> bool:
        if isinstance(value, str | bytes | bytearray | memoryview):
            return len(value) >= self.put_over
        nbytes = getattr(value, "nbytes", None)  # an array
        return isinstance(nbytes, int) and nbytes >= self.put_over

    def _mapped(self, exc: BaseException, ref: Any, fn: Callable[..., Any]) -> BaseException:
        """What the leaf raises for what awaiting the task raised."""
        errors = self._ray.exceptions
        if not isinstance(exc, Exception):  # cancelled: the leaf's task is, so is the Ray task
            self._ray.cancel(ref, force=True)
            return exc
        lost = (
            errors.WorkerCrashedError,
            errors.NodeDiedError,
            errors.ObjectLostError,
            errors.LocalRayletDiedError,
        )
        if isinstance(exc, lost):
            name = getattr(fn, "__qualname__", repr(fn))
            error = WorkerLost(f"the Ray worker running {name} died ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            return error
        if isinstance(exc, errors.RayTaskError):  # the function raised: the leaf raises what it raised
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                return cause
        return exc

    async def aclose(self) -> None:
        self._remotes.clear()
        if self._connected:
            self._connected = False
            self._ray.shutdown()
