"""A pipeline step's options are its flow's: every option is a parameter of the step's
flow with the flow's default (or one the pipeline fills in), and the flow takes them."""

from __future__ import annotations

import inspect

import pytest

from flows.pipeline_step import PipelineStep, StepRun, dataset_names
from flows.steps import STEP_TYPES, validate_steps
from tasks.cluster.options import RayOptions

REQUIRED = {"tokenize": {"tokenizer": "tok/tokenizer.json"}}


@pytest.mark.parametrize("step_type", STEP_TYPES, ids=lambda t: t.name)
def test_a_steps_options_are_its_flows_parameters_with_its_defaults(step_type):
    flow = inspect.getattr_static(step_type, "flow")
    takes = inspect.signature(flow.fn).parameters
    step = step_type(**REQUIRED.get(step_type.name, {}))
    options = step.flow_options(StepRun(RayOptions(), None, lambda: None, daily=False))
    own = set(step_type.model_fields) - set(PipelineStep.model_fields)
    assert set(options) == own
    for name, value in options.items():
        assert name in takes, f"{step_type.name}.{name} is not a parameter of its flow"
        default = takes[name].default
        if default is not inspect.Parameter.empty:
            assert value == default, f"{step_type.name}.{name}: {value!r} != {default!r}"
    # Every step also takes what the pipeline gives each one.
    for shared in ("input_uri", "output_uri", "ray", "aws_credentials", "timeout_minutes"):
        assert shared in takes, (step_type.name, shared)
    assert "health" in takes
    flow.validate_parameters({"input_uri": "in", "output_uri": "out", **options})


def test_repeated_steps_get_datasets_of_their_own():
    steps = validate_steps([{"filter": {}}, {"dedup": {}}, {"filter": {}}, {"filter": {}}])
    names = dataset_names([next(iter(dict(s).values())) for s in steps])
    assert names == ["filtered", "deduped", "filtered_2", "filtered_3"]


def test_dedup_compares_with_earlier_dates_on_a_daily_run_unless_told():
    (entry,) = validate_steps([{"dedup": {}}])
    dedup = next(iter(dict(entry).values()))
    daily = StepRun(RayOptions(), None, lambda: None, daily=True)
    assert dedup.flow_options(daily)["against_earlier"] is True
    (entry,) = validate_steps([{"dedup": {"against_earlier": False}}])
    assert next(iter(dict(entry).values())).flow_options(daily)["against_earlier"] is False
