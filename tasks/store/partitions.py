"""Daily partitions: which date a run is for, and where that date's data lives.

A nightly run processes the date it was scheduled for, in the schedule's timezone
(02:00 in Seoul on 2 March is still 1 March in UTC); ``run_date`` overrides it. No run
or backfill may be for a date later than tomorrow in that timezone: such a date has no
data yet, and retention counts back from the run's date.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tasks.errors import InputError

# A backfill beyond this many dates is more likely a typo than a plan.
MAX_BACKFILL_DAYS = 366


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(value: dt.date | str, parameter: str) -> dt.date:
    """``YYYY-MM-DD`` as a date (a date stays as it is), or an InputError naming the
    parameter."""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InputError(f"{parameter} must be a date as YYYY-MM-DD, got {value!r}")


def zone(timezone: str) -> ZoneInfo:
    """The IANA timezone named ``timezone``, or an InputError naming it."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"timezone {timezone!r} is not an IANA timezone name") from None


def run_date(override: dt.date | str | None, scheduled: dt.datetime, timezone: str) -> dt.date:
    """``override`` if given, else the calendar date of ``scheduled`` in ``timezone``."""
    if override:
        return parse_date(override, "run_date")
    if scheduled.tzinfo is None:
        raise ValueError("scheduled time must be timezone-aware")
    return scheduled.astimezone(zone(timezone)).date()


def today(timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The calendar date in ``timezone`` at ``now`` (default: the current time)."""
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(zone(timezone)).date()


def check_not_future(
    day: dt.date, timezone: str, now: dt.datetime | None = None, parameter: str = "run_date"
) -> None:
    """Refuse ``day`` if it is later than tomorrow in ``timezone`` (at ``now``), naming
    ``parameter`` and today's date there. Tomorrow is allowed: a schedule in a timezone
    ahead of the clock's may already be there."""
    current = today(timezone, now)
    if day > current + dt.timedelta(days=1):
        raise InputError(
            f"{parameter} {day.isoformat()} is later than tomorrow in {timezone} (today there "
            f"is {current.isoformat()}): a date that has not come yet has no data"
        )


def partition(base_uri: str, day: dt.date) -> str:
    """The Hive-style partition of ``day`` under ``base_uri``: ``{base}/dt=YYYY-MM-DD``."""
    return f"{base_uri.rstrip('/')}/dt={day.isoformat()}"


def date_range(
    start: dt.date | str,
    end: dt.date | str,
    timezone: str = "UTC",
    now: dt.datetime | None = None,
) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included; ``end`` may not be later than
    tomorrow in ``timezone`` (the pipeline's) at ``now``."""
    first, last = parse_date(start, "start_date"), parse_date(end, "end_date")
    if last < first:
        raise InputError(f"end_date {end} is before start_date {start}")
    check_not_future(last, timezone, now, parameter="end_date")
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise InputError(f"{days} dates from {start} to {end}: at most {MAX_BACKFILL_DAYS}")
    return [first + dt.timedelta(days=i) for i in range(days)]


def daily_seed(seed: int, day: dt.date) -> int:
    """The generator seed for ``day``: each date's rows differ, a rerun's do not."""
    return seed + day.toordinal()
