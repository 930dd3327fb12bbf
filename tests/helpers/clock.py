"""A clock that tests set by hand: pass it where the code under test takes ``clock=`` (a callable)."""

from __future__ import annotations


class Clock:
    """Returns :attr:`now` when called; a test moves time by setting or adding to it.

    :param now: the epoch seconds to start at.
    """

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
