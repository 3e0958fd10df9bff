"""The steps a pipeline may be given, in the order the UI's form lists them.

A new step is its class (a :class:`flows.pipeline_step.PipelineStep` beside its flow)
and one entry here; nothing else names it.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from flows.dedup import DedupStep
from flows.filter import FilterStep
from flows.pipeline_step import PipelineStep, steps_type
from flows.preprocess import PreprocessStep
from flows.tokenize import TokenizeStep

STEP_TYPES: tuple[type[PipelineStep], ...] = (PreprocessStep, FilterStep, DedupStep, TokenizeStep)
Steps = steps_type(STEP_TYPES)
DEFAULT_STEPS = ({"preprocess": {}},)


def validate_steps(steps: Any) -> list[Any]:
    """A steps list as the pipeline takes it (already validated entries pass as they are)."""
    return TypeAdapter(Steps).validate_python(list(steps))
