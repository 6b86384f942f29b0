"""How the public modules (``fanfold``, ``fanfold.events``, ``fanfold.testing``) present the
names they re-export: as their own, and, for a wing's names, loaded on first use.

- :func:`adopt` sets a class's or function's ``__module__`` to the public module (as httpx does
  for every public class, and trio's ``fixup_module_metadata``), so that reprs, tracebacks and
  pickles say ``fanfold.Limits``, not the private module that defines it.
- :func:`load` resolves a lazy name from its ``"module:attr"`` entry (PEP 562's module
  ``__getattr__``), so ``import fanfold`` loads no wing (pydantic-ai, the HTTP clients, the
  stores, the simulator) until a program uses one.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any


def adopt(namespace: Mapping[str, Any], public: str, names: Iterable[str]) -> None:
    """Make each class or function in ``names`` (found in ``namespace``) belong to the module
    named ``public``."""
    for name in names:
        claim(namespace[name], public, name, lazy=False)


def claim(obj: Any, public: str, name: str, *, lazy: bool) -> None:
    """Set ``obj.__module__`` to ``public``, and its name to ``name`` (the public one, which an
    alias like ``JournalEntry`` differs in), so that ``public.name`` finds it again, as pickle
    does. Anything else (a module, a string, an agent instance) is left as it is."""
    if not isinstance(obj, type | types.FunctionType):
        return
    home = obj.__module__
    if home == public or not home.startswith("fanfold."):
        return
    obj.__module__ = public
    if obj.__qualname__ != name:
        obj.__name__ = obj.__qualname__ = name
    _keep_examples(obj, home, name, whole=lazy)


def _keep_examples(obj: Any, home: str, name: str, *, whole: bool) -> None:
    """Keep the docstring examples of ``obj`` running (as tests, under ``--doctest-modules``).

    doctest finds a module's examples in the classes and functions whose ``__module__`` is that
    module's name. An eagerly exported name's own docstring is now found in the public module
    (it uses ``ff.`` as every example does), but its methods' docstrings would be found nowhere:
    they go in the home module's ``__test__``. A lazy name is never in the public module's
    namespace (:func:`load` keeps it out), so all of it goes in ``__test__``.
    """
    module = sys.modules.get(home)
    if module is None:
        return
    tests: dict[str, Any] = module.__dict__.setdefault("__test__", {})
    if whole:
        tests[name] = obj
        return
    if not isinstance(obj, type):
        return
    for attr, member in vars(obj).items():
        function = getattr(member, "__func__", getattr(member, "fget", member))  # class/static method, property
        if isinstance(function, types.FunctionType) and function.__doc__ and ">>>" in function.__doc__:
            tests[f"{name}.{attr}"] = function


def load(public: str, table: Mapping[str, str], name: str) -> Any:
    """The lazy name ``name`` of the module ``public``, imported from its ``table`` entry
    (``"module:attr"``). Every lazy name whose module is loaded by then is claimed too, so a
    value made inside the wing (a ``TeamResult`` that a team returns) pickles under the public
    name as well.

    The value is not kept in the public module's namespace: doctest would find it there, and
    run its examples a second time, among the public module's globals rather than its own.
    The lookup costs a dict access, and a wing's names are not on any hot path.
    """
    target = table.get(name)
    if target is None:
        raise AttributeError(f"module {public!r} has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr)
    for other, other_target in table.items():
        other_module, _, other_attr = other_target.partition(":")
        loaded = getattr(sys.modules.get(other_module), other_attr, None)  # a module mid-import may lack it
        if loaded is not None:
            claim(loaded, public, other, lazy=True)
    return value
