"""Docstring examples in src/fanfold run as tests, with ``ff`` at hand as in the docs."""

from typing import Any

import pytest

import fanfold


@pytest.fixture(autouse=True)
def _fanfold_in_doctests(doctest_namespace: dict[str, Any]) -> None:
    doctest_namespace["ff"] = fanfold
