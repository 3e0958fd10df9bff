"""How a step's parts run on Ray: the options a flow takes and passes to Ray Data."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tasks.errors import TransientPartError


class RayInit(BaseModel):
    """The local Ray a flow run starts when it joins no cluster (no ``RAY_ADDRESS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: PositiveFloat | None = Field(None, description="CPUs it offers (default: all).")
    object_store_memory: PositiveInt | None = Field(
        None, description="Bytes of its object store (default: Ray's share of memory)."
    )
    spill_dir: str | None = Field(
        None, description="Where a full object store spills to (default: Ray's temp dir)."
    )


# Attempts after the first that Ray Data gives one part task (transient errors, lost
# workers or nodes) before the stage fails, and Prefect's stage retry takes over.
PART_RETRIES = 3

# Keys of Dataset.map that have a field of their own here.
_OWN_KEYS = {"num_cpus", "resources", "compute", "concurrency"}


class RayOptions(BaseModel):
    """Where and how a stage's parts run on Ray: the seed's scheduling knobs.

    Shared by the generate, preprocess and pipeline flows (the Prefect UI shows it as
    one nested form). The defaults run one part per task on one CPU anywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: float = Field(1.0, gt=0, description="CPUs each part task reserves.")
    resources: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description='Custom resources each part task needs: {"Intel": 1} runs the parts '
        "only on nodes advertising that resource (the seed's Intel/Graviton node types).",
    )
    compute: Literal["tasks", "actors"] = Field(
        "tasks", description="A Ray task per block, or a pool of long-lived actors."
    )
    actor_pool: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="(min, max) actors when compute is actors (default: 1 to all CPUs)."
    )
    read_blocks: PositiveInt | None = Field(
        None,
        description="preprocess: Ray Data tasks the parts are split into (default: one per "
        "part; fewer means each task writes several parts in turn, as the seed's "
        "read_parquet(parallelism=...)). generate ignores it.",
    )
    remote_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Anything else Ray Data's Dataset.map takes (memory, "
        "scheduling_strategy, ...).",
    )
    init: RayInit = Field(
        default_factory=RayInit,
        description="Size of the local Ray a run starts when it joins no cluster.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RayOptions:
        if self.actor_pool is not None:
            if self.compute != "actors":
                raise ValueError("actor_pool is only for compute='actors'")
            low, high = self.actor_pool
            if low > high:
                raise ValueError(
                    f"actor_pool must be (min, max) with min <= max, got {self.actor_pool}"
                )
        clash = _OWN_KEYS & set(self.remote_args)
        if clash:
            raise ValueError(
                f"remote_args may not set {sorted(clash)}: use the fields of that name"
            )
        return self

    def map_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Dataset.map``."""
        import ray.data

        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.compute == "tasks":
            # A part that fails for a transient reason is retried by itself; a lost worker
            # or node counts against the same budget (Ray Data's default is unlimited).
            # Ray 2.60 deprecates passing these through Dataset.map's **ray_remote_args
            # (removal announced for 2.64) but has no named parameter for them yet: its
            # RayDeprecationWarning stays visible in the stage's worker log until then.
            options.update(max_retries=PART_RETRIES, retry_exceptions=[TransientPartError])
        options.update(self.remote_args)
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.compute == "actors":
            low, high = self.actor_pool or (
                1,
                max(1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus)),
            )
            options["compute"] = ray.data.ActorPoolStrategy(min_size=low, max_size=high)
        return options
