"""A pipeline step's options are its flow's: every option is a parameter of the step's
flow with the flow's default (or one the pipeline fills in), and the flow takes them."""

from __future__ import annotations

import inspect

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_docstrings
from pydantic import ValidationError

from flows.pipeline_step import GIVEN, PipelineStep, StepRun, dataset_names
from flows.steps import STEP_TYPES, validate_steps
from tasks.cluster.options import RayOptions

REQUIRED = {"tokenize": {"tokenizer": "tok/tokenizer.json"}}
# Options whose default in a pipeline the pipeline decides (its flow's is another).
DECIDED = {"against_earlier"}


@pytest.mark.parametrize("step_type", STEP_TYPES, ids=lambda t: t.name)
def test_a_steps_options_are_its_flows_parameters_with_its_defaults(step_type):
    flow = inspect.getattr_static(step_type, "flow")
    takes = inspect.signature(flow.fn).parameters
    step = step_type(**REQUIRED.get(step_type.name, {}))
    options = step.flow_options(StepRun(RayOptions(), None, lambda: None, daily=False))
    own = set(step_type.model_fields) - set(PipelineStep.model_fields)
    # Every parameter of the flow the pipeline does not give is an option, and no more.
    assert set(options) == own == set(takes) - set(GIVEN)
    described = parameter_docstrings(inspect.getdoc(flow.fn))
    for name, value in options.items():
        default = takes[name].default
        if default is not inspect.Parameter.empty and name not in DECIDED:
            assert value == default, f"{step_type.name}.{name}: {value!r} != {default!r}"
        if name not in DECIDED:  # the UI's form says what the flow's docstring says
            assert step_type.model_fields[name].description == described[name]
    # Every step also takes what the pipeline gives each one.
    for shared in GIVEN:
        assert shared in takes or shared == "input_format", (step_type.name, shared)
    flow.validate_parameters({"input_uri": "in", "output_uri": "out", **options})


@pytest.mark.parametrize("step_type", STEP_TYPES, ids=lambda t: t.name)
def test_a_steps_options_are_checked_as_its_flow_checks_them(step_type):
    """A bad value the flow refuses, the step refuses, for every bounded option."""
    flow = inspect.getattr_static(step_type, "flow")
    base = {"input_uri": "in", "output_uri": "out", **REQUIRED.get(step_type.name, {})}
    for name, field in step_type.model_fields.items():
        if name in PipelineStep.model_fields or name in DECIDED or not field.metadata:
            continue
        bad = {"ge": -1, "gt": 0, "min_length": ""}
        bound = next(k for m in field.metadata for k in bad if getattr(m, k, None) is not None)
        wrong = {**REQUIRED.get(step_type.name, {}), name: bad[bound]}
        with pytest.raises(ValidationError, match=name):
            step_type(**wrong)
        with pytest.raises(ParameterTypeError, match=name):
            flow.validate_parameters({**base, name: bad[bound]})


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
