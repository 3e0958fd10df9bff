"""Which date a run is for, and the dates a backfill covers."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks.errors import InputError
from tasks.store import partitions

UTC = dt.UTC


def test_scheduled_time_is_read_in_the_schedules_timezone():
    # 02:00 in Seoul on 2 March is 17:00 UTC on 1 March.
    scheduled = dt.datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert partitions.run_date(None, scheduled, "Asia/Seoul") == dt.date(2026, 3, 2)
    assert partitions.run_date(None, scheduled, "UTC") == dt.date(2026, 3, 1)


def test_run_date_overrides_the_schedule():
    scheduled = dt.datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert partitions.run_date("2025-12-31", scheduled, "Asia/Seoul") == dt.date(2025, 12, 31)


@pytest.mark.parametrize("bad", ["2026-02-30", "20260301", "2026-3-1", "yesterday", " "])
def test_a_bad_run_date_names_the_parameter(bad):
    with pytest.raises(InputError, match="run_date must be a date as YYYY-MM-DD"):
        partitions.run_date(bad, dt.datetime.now(UTC), "UTC")


def test_a_bad_timezone_is_named():
    with pytest.raises(InputError, match="'Mars/Olympus' is not an IANA timezone"):
        partitions.run_date(None, dt.datetime.now(UTC), "Mars/Olympus")


def test_partitions_are_hive_style_under_the_dataset():
    day = dt.date(2026, 11, 26)
    assert partitions.partition("s3://b/raw/", day) == "s3://b/raw/dt=2026-11-26"


def test_date_range_includes_both_ends_across_a_month():
    days = partitions.date_range("2026-02-27", "2026-03-01")
    assert [d.isoformat() for d in days] == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert partitions.date_range("2026-01-05", "2026-01-05") == [dt.date(2026, 1, 5)]


def test_date_range_refuses_reversed_or_huge_ranges():
    with pytest.raises(InputError, match="end_date 2026-01-01 is before start_date 2026-01-02"):
        partitions.date_range("2026-01-02", "2026-01-01")
    with pytest.raises(InputError, match="at most 366"):
        partitions.date_range("2020-01-01", "2026-01-01")
    with pytest.raises(InputError, match="start_date must be"):
        partitions.date_range("2026-13-01", "2026-12-01")


def test_each_date_has_its_own_seed_and_reruns_share_it():
    a, b = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
    assert partitions.daily_seed(0, a) != partitions.daily_seed(0, b)
    assert partitions.daily_seed(7, a) == partitions.daily_seed(7, a)


# 23:30 UTC on 10 March is already 11 March in Seoul.
NOW = dt.datetime(2026, 3, 10, 23, 30, tzinfo=UTC)


def test_today_is_read_in_the_timezone():
    assert partitions.today("UTC", NOW) == dt.date(2026, 3, 10)
    assert partitions.today("Asia/Seoul", NOW) == dt.date(2026, 3, 11)


def test_a_date_up_to_tomorrow_is_accepted():
    for day in (dt.date(2020, 1, 1), dt.date(2026, 3, 10), dt.date(2026, 3, 11)):
        partitions.check_not_future(day, "UTC", NOW)
    partitions.check_not_future(dt.date(2026, 3, 12), "Asia/Seoul", NOW)  # tomorrow there


@pytest.mark.parametrize("day", [dt.date(2026, 3, 12), dt.date(2031, 1, 1)])
def test_a_date_after_tomorrow_is_refused_naming_today(day):
    with pytest.raises(InputError) as refused:
        partitions.check_not_future(day, "UTC", NOW)
    message = str(refused.value)
    assert f"run_date {day} is later than tomorrow in UTC" in message
    assert "today there is 2026-03-10" in message


def test_date_range_refuses_an_end_date_after_tomorrow():
    assert partitions.date_range("2026-03-10", "2026-03-11", "UTC", NOW)[-1] == dt.date(2026, 3, 11)
    with pytest.raises(
        InputError,
        match=r"end_date 2026-03-12 is later than tomorrow in UTC "
        r"\(today there is 2026-03-10\)",
    ):
        partitions.date_range("2026-03-10", "2026-03-12", "UTC", NOW)
    # The pipeline's timezone decides: 12 March is tomorrow in Seoul.
    assert partitions.date_range("2026-03-12", "2026-03-12", "Asia/Seoul", NOW)
    with pytest.raises(InputError, match="end_date 2031-01-01 is later than tomorrow"):
        partitions.date_range("2030-12-30", "2031-01-01")  # the real clock
