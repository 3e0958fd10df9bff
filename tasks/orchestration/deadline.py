"""A run's timeout as a deadline that every process can check: wall-clock epoch seconds.

A flow turns ``timeout_minutes`` into a deadline once, at its start; the stages it runs,
on whichever nodes, compare against that one instant (node clocks are NTP-synchronised,
which is far finer than a timeout in minutes).
"""

from __future__ import annotations

import time

from tasks.errors import DeadlineExceeded


def after(minutes: float | None) -> float | None:
    """The deadline ``minutes`` from now, or None for no timeout."""
    return None if minutes is None else time.time() + minutes * 60.0


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (0 once past it), or None for no timeout."""
    return None if deadline is None else max(0.0, deadline - time.time())


def check(deadline: float | None, doing: str) -> None:
    """Raise :class:`DeadlineExceeded` if ``deadline`` has passed, naming what was about
    to happen (``doing``)."""
    if deadline is not None and time.time() >= deadline:
        late = time.time() - deadline
        raise DeadlineExceeded(
            f"the run is past its timeout ({late:.0f} s late); stopped before it could "
            f"{doing}, so nothing of it is committed"
        )
