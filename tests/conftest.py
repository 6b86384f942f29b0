from collections.abc import Iterator

import pytest

from fanfold.testing import VirtualClock


@pytest.fixture
def clock() -> Iterator[VirtualClock]:
    """Virtual time for the test: timers fire as soon as the loop would wait for them."""
    with VirtualClock() as virtual:
        yield virtual
