"""A step's counts are typed and add: the skeleton's ``Counts`` and ``total``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tasks.steps.filter.options import FilterOptions
from tasks.steps.filter.step import Fired, Judged, Tally
from tasks.steps.skeleton import Counts, total


@dataclass(frozen=True)
class Inner(Counts):
    a: int = 0


@dataclass(frozen=True)
class Outer(Counts):
    rows: int = 0
    per_kind: dict[str, Inner] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)


def test_counts_add_field_by_field_and_key_by_key():
    one = Outer(2, {"x": Inner(1), "y": Inner(5)}, ["first"])
    two = Outer(3, {"y": Inner(2), "z": Inner(7)}, ["second"])
    assert one + two == Outer(5, {"x": Inner(1), "y": Inner(7), "z": Inner(7)}, ["first", "second"])
    # Neither side changed (frozen counts are values).
    assert one == Outer(2, {"x": Inner(1), "y": Inner(5)}, ["first"])


def test_total_starts_from_its_zero_and_refuses_other_counts():
    parts = [Outer(1, {"x": Inner(1)}), Outer(2), Outer(3, {"x": Inner(4)})]
    assert total(parts, Outer()) == Outer(6, {"x": Inner(5)})
    assert total([], Outer(0, {"x": Inner()})) == Outer(0, {"x": Inner()})
    with pytest.raises(TypeError):
        total([Inner(1)], Outer())


def test_a_filter_runs_counts_keep_every_rule_and_the_first_examples():
    options = FilterOptions()
    zero = Judged.zero(options)
    part = Judged(
        {"c4.curly_bracket": Fired(1, 10, 2)},
        {"en": Tally(3, 2, {"c4.curly_bracket": 1})},
        {"c4.curly_bracket": ["a", "b"]},
    )
    run = total([part, part], zero).capped()
    assert set(run.rules) == set(zero.rules)  # rules no part fired stay, at 0
    assert run.rules["c4.curly_bracket"] == Fired(2, 20, 4)
    assert run.languages == {"en": Tally(6, 4, {"c4.curly_bracket": 2})}
    assert run.examples["c4.curly_bracket"] == ["a", "b", "a"]  # the first EXAMPLE_ROWS
