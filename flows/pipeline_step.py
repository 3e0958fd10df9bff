"""What a step of ``pipeline(steps=[...])`` is: one entry with one key, the step's name,
holding the step's options; and how a list of them is typed.

A step type is a pydantic model of its flow's options (:func:`options_of`: the flow's own
parameters, as the flow declares them) plus what the pipeline asks of every step
(``health``, ``keep_days``), and says the rest itself: the dataset it writes
under the bucket, how large that is for a given input, the columns it reads and leaves,
and how its flow is called. The pipeline, the backfill and retention know steps only
through this; a new step is its class and an entry in :data:`flows.steps.STEP_TYPES`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, ClassVar, Union

from prefect.utilities.callables import parameter_docstrings
from prefect_aws import AwsCredentials
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from tasks.cluster.options import RayOptions
from tasks.errors import InputError
from tasks.orchestration.health import HealthBounds

_DATASET_NAME = re.compile(r"[a-z][a-z0-9_]*")
# The parameters of a step's flow the pipeline gives it (``PipelineStep.run``), which are
# therefore not the step's options.
GIVEN = (
    "input_uri",
    "output_uri",
    "input_format",
    "ray",
    "aws_credentials",
    "timeout_minutes",
    "health",
)


@dataclasses.dataclass(frozen=True)
class Source:
    """What a step reads: a URI and its format (``auto`` for a committed dataset)."""

    uri: str
    format: str = "auto"


@dataclasses.dataclass(frozen=True)
class StepRun:
    """What every step of one pipeline run shares: where its parts run, the S3
    credentials, the minutes left of the run's timeout and whether the run is daily."""

    ray: RayOptions
    aws_credentials: AwsCredentials | None
    minutes_left: Callable[[], float | None]
    daily: bool


class PipelineStep(BaseModel):
    """A step's options in a pipeline, each one a field; a step's own are its flow's
    (a step type derives from :func:`options_of` its flow)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]  # the key that names the step in ``steps``
    dataset: ClassVar[str]  # what it writes under the bucket (``preprocessed``)
    # The step's own flow, whose parameters its options are (:func:`options_of`).
    flow: ClassVar[Any]
    # Whether a step may follow it: tokenized shards are not rows to read.
    final: ClassVar[bool] = False

    health: HealthBounds = Field(
        default_factory=HealthBounds,
        description="Bounds on what the step commits; out of them the run alerts.",
    )
    keep_days: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="With a daily run, how many dates of this step's dataset to keep "
        "(0: remove the run's date once the run's last step has committed); the "
        "pipeline's keep_days if not set.",
    )

    def flow_options(self, run: StepRun | None = None) -> dict[str, Any]:
        """The step's own options, as its flow takes them (nested models as they are)."""
        shared = PipelineStep.model_fields
        return {name: getattr(self, name) for name in type(self).model_fields if name not in shared}

    def run(self, source: Source, output_uri: str, run: StepRun) -> str:
        """Run the step's flow from ``source`` into ``output_uri``, with what every
        step of the run shares; its output URI."""
        # A Prefect flow is a descriptor (flows may be methods): taken as it is stored.
        flow = inspect.getattr_static(self, "flow")
        takes = inspect.signature(flow.fn).parameters
        return flow(
            source.uri,
            output_uri,
            **({"input_format": source.format} if "input_format" in takes else {}),
            **self.flow_options(run),
            ray=run.ray,
            aws_credentials=run.aws_credentials,
            timeout_minutes=run.minutes_left(),
            health=self.health,
        )

    def output_bytes(self, input_bytes: int, rows: int) -> int:
        """About how many bytes the step writes for an input of ``input_bytes`` and
        ``rows`` (its free-space estimate)."""
        raise NotImplementedError

    def reads(self) -> set[str]:
        """The input columns the step needs."""
        return set()

    def adds(self) -> set[str]:
        """The columns the step adds, which its input must not have yet."""
        return set()

    def columns(self, columns: set[str]) -> set[str]:
        """The columns of its output, given its input's."""
        return columns | self.adds()

    def reads_earlier_dates(self, daily: bool) -> bool:
        """Whether a later date's run of this step reads this date's output (so it
        cannot be an intermediate)."""
        return False


def options_of(flow: Any) -> type[PipelineStep]:
    """The base of ``flow``'s step type: a :class:`PipelineStep` whose fields are the
    flow's own parameters (all but :data:`GIVEN`), with the types, bounds and defaults
    the flow's signature declares and the descriptions its docstring gives; so the
    pipeline's steps, the UI's form and the server validate a step's options exactly as
    its flow does, and an option added to the flow is one line. A step type may
    redefine a field whose default the pipeline decides (dedup's ``against_earlier``)."""
    fn = flow.fn
    hints = typing.get_type_hints(fn, include_extras=True)
    described = parameter_docstrings(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if name in GIVEN:
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hints[name], Field(default, description=described.get(name)))
    base = create_model(f"{fn.__name__}_options", __base__=PipelineStep, **fields)
    base.flow = flow
    return base


def step_of(entry: Any) -> PipelineStep:
    """The options an entry of a validated steps list holds (``{name: {...}}``)."""
    (options,) = dict(entry).values()
    return options


def _tag(types: Sequence[type[PipelineStep]]) -> Callable[[Any], str | None]:
    names = {t.name for t in types}

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            return next(iter(value)) if len(value) == 1 and next(iter(value)) in names else None
        return next((n for n in names if isinstance(getattr(value, n, None), BaseModel)), None)

    return tag


def steps_type(types: Sequence[type[PipelineStep]]) -> Any:
    """The type of a steps list of ``types``: each entry exactly one key, a step's
    name, with that step's options; anything else is refused, naming the steps."""
    entries = [
        Annotated[
            create_model(
                f"{t.__name__}Entry",
                __config__=ConfigDict(extra="forbid", frozen=True),
                **{t.name: (t, Field(..., description=(t.__doc__ or "").split("\n")[0]))},
            ),
            Tag(t.name),
        ]
        for t in types
    ]
    names = ", ".join(t.name for t in types)
    return list[
        Annotated[
            Union[tuple(entries)],  # noqa: UP007 (a Union built from a tuple of types)
            Discriminator(
                _tag(types),
                custom_error_type="unknown_step",
                custom_error_message=f"a step is one key, naming one of: {names}",
            ),
        ]
    ]


def dataset_names(steps: Iterable[PipelineStep]) -> list[str]:
    """The dataset each step writes: its own name, then ``_2``, ``_3`` for repeats."""
    seen: dict[str, int] = {}
    names = []
    for step in steps:
        seen[step.dataset] = seen.get(step.dataset, 0) + 1
        count = seen[step.dataset]
        name = step.dataset if count == 1 else f"{step.dataset}_{count}"
        if not _DATASET_NAME.fullmatch(name):
            raise ValueError(f"{type(step).__name__}.dataset {name!r} is not a dataset name")
        names.append(name)
    return names


def run_steps(
    steps: Sequence[PipelineStep], source: Source, where: Callable[[str], str], run: StepRun
) -> str:
    """Run ``steps`` in order, the first from ``source``, each from the dataset the one
    before committed, each into ``where(its dataset name)``; the last one's URI."""
    for step, name in zip(steps, dataset_names(steps), strict=True):
        source = Source(step.run(source, where(name), run))
    return source.uri


def check_order(steps: Sequence[PipelineStep], columns: set[str] | None) -> None:
    """Refuse, before anything runs, steps that cannot follow each other: a step after
    a final one, or one reading a column the dataset before it lacks (``columns``: the
    first input's, None if unknown until it is read)."""
    if not steps:
        raise InputError("steps is empty: give at least one step")
    for number, step in enumerate(steps, start=1):
        if number > 1 and steps[number - 2].final:
            before = steps[number - 2].name
            raise InputError(
                f"steps[{number}] ({step.name}) follows {before}, whose output is not rows "
                f"to read: {before} must be the last step"
            )
        if columns is None:  # a corpus's columns: known once it is read
            continue
        before = f"steps[{number - 1}] ({steps[number - 2].name})" if number > 1 else "input"
        if missing := sorted(step.reads() - columns):
            raise InputError(
                f"steps[{number}] ({step.name}) reads column(s) {', '.join(missing)}, which "
                f"the dataset of {before} does not have (its columns: "
                f"{', '.join(sorted(columns))})"
            )
        if taken := sorted(step.adds() & columns):
            raise InputError(
                f"steps[{number}] ({step.name}) adds column(s) {', '.join(taken)}, which the "
                f"dataset of {before} already has: it cannot run on rows it has judged"
            )
        columns = step.columns(columns)
