"""Alerts as code: the Prefect automations that tell the person on call a run went wrong.

Built from ``deployments/alerts.yaml`` (:class:`AlertSettings`) and applied to a server
by name (:func:`apply`): applying twice changes nothing, an edited setting replaces the
automation it shapes, and an automation of ours no longer built is deleted.

- ``failed``: a run of a deployment carrying the project's tag ends Failed or Crashed
  (a run past ``timeout_minutes`` fails with ``DeadlineExceeded``); the text names the
  step that failed (the ``failed-step:`` tag ``flows.runs`` leaves) and the error.
- ``crashed``: a running flow run of ours whose heartbeats stop (its process or its
  worker was killed) is marked Crashed ``crashed_after_seconds`` after the last one,
  which ``failed`` then sends. Heartbeats are Prefect's own
  (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set for every deployment in prefect.yaml).
- ``late: <flow>/<deployment>``: one per deployment; the server marks a scheduled run
  Late shortly after its time, and this fires when it has still not started (Pending,
  Running or cancelled) the deployment's ``late_after_minutes`` after it.
- ``data health``: a step committed a dataset whose figures are out of bounds
  (``tasks.orchestration.health``: an empty input, nothing kept, a deployment's bounds).

Each alert is one notification through the block made from ``ALERT_WEBHOOK_URL``
(:func:`notification_block`: Slack's or Teams' own, any other URL a JSON webhook);
without one, each automation still fires and the UI's event feed shows it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

import yaml
from prefect.automations import (
    AutomationCore,
    ChangeFlowRunState,
    DoNothing,
    EventTrigger,
    Posture,
    SendNotification,
)
from prefect.client.schemas.objects import StateType

from tasks.errors import InputError
from tasks.orchestration import health

PREFIX = "ray-text-pipeline: "  # names of our automations, and of nothing else
BLOCK_NAME = "ray-text-pipeline-alerts"
# The server marks a run Late this long after its scheduled time
# (PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS): a late alert waits the rest.
LATE_MARK_SECONDS = 15
# What ends waiting for a late run to start.
STARTED = ("Pending", "Running", "Cancelling", "Cancelled", "Completed", "Failed", "Crashed")
# What ends a flow run's heartbeats without it having crashed.
ENDED = ("Cancelling", "Cancelled", "Completed", "Failed", "Crashed")
# A flow run whose environment does not set PREFECT_FLOWS_HEARTBEAT_FREQUENCY (a run's
# own `env` job variable replaces the deployment's) heartbeats this often: the crashed
# alert must wait longer, with room for a slow start, or it would mark a healthy run
# Crashed (and the server would release its concurrency slot under it).
PREFECT_DEFAULT_HEARTBEAT_SECONDS = 180
MIN_CRASHED_AFTER_SECONDS = PREFECT_DEFAULT_HEARTBEAT_SECONDS + 60
# The tag flows.runs.mark_failed_step leaves on a run: the failure alert names the step.
FAILED_STEP_TAG = "failed-step:"

FAILED_SUBJECT = "{{ flow_run.state.name }}: {{ flow.name }}/{{ deployment.name }}"
FAILED_BODY = (
    "{{ flow_run.state.name }}: {{ flow.name }}/{{ deployment.name }} run "
    "{{ flow_run.name }}\n"
    "{% for tag in flow_run.tags %}{% if tag.startswith('" + FAILED_STEP_TAG + "') %}"
    "step {{ tag[" + str(len(FAILED_STEP_TAG)) + ":] }} failed: {% endif %}{% endfor %}"
    "{{ (flow_run.state.message or 'no message').strip().splitlines()[0]"
    ".replace('Flow run encountered an exception: ', '') }}\n"
    "{{ flow_run|ui_url }}"
)
CRASHED_MESSAGE = (
    "no heartbeat for {seconds:g} s: the flow run's process or its worker died "
    "(killed, out of memory, or its machine lost)"
)
UNHEALTHY_SUBJECT = "Unhealthy data: {{ flow.name }}/{{ deployment.name }}"
UNHEALTHY_BODY = (
    "Unhealthy data: {{ flow.name }}/{{ deployment.name }} run {{ flow_run.name }}\n"
    "step {{ event.payload.step }} wrote {{ event.payload.dataset }}: "
    "{{ event.payload.problems | join('; ') }}\n"
    "rows in {{ event.payload.rows_in }}, rows out {{ event.payload.rows_out }}\n"
    "{{ flow_run|ui_url }}"
)
LATE_SUBJECT = "Late: {{ flow.name }}/{{ deployment.name }}"
LATE_BODY = (
    "Late: {{ flow.name }}/{{ deployment.name }} run {{ flow_run.name }}, scheduled for "
    "{{ flow_run.expected_start_time }}, has not started (late after {minutes} minutes): "
    "no worker, a paused pool or deployment, or a full concurrency limit\n"
    "{{ flow_run|ui_url }}"
)


@dataclass(frozen=True)
class AlertSettings:
    """``deployments/alerts.yaml``."""

    tag: str
    late_after_minutes: dict[str, float] = field(default_factory=dict)
    default_late_minutes: float = 60.0
    crashed_after_seconds: float = 270.0

    @classmethod
    def load(cls, path: Path) -> AlertSettings:
        """The settings in ``path``; an InputError naming the file and the setting."""
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            late = dict(raw.get("late_after_minutes") or {})
            settings = cls(
                tag=str(raw["tag"]),
                late_after_minutes={k: float(v) for k, v in late.items() if k != "default"},
                default_late_minutes=float(late.get("default", 60)),
                crashed_after_seconds=float(raw.get("crashed_after_seconds", 270)),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: not valid alert settings ({exc!r})") from None
        minutes = [settings.default_late_minutes, *settings.late_after_minutes.values()]
        if min(minutes) * 60 < LATE_MARK_SECONDS + 10:
            raise InputError(f"{path}: late_after_minutes must be at least 0.5 (got {minutes})")
        if settings.crashed_after_seconds < MIN_CRASHED_AFTER_SECONDS:
            raise InputError(
                f"{path}: crashed_after_seconds must be at least {MIN_CRASHED_AFTER_SECONDS} "
                f"(got {settings.crashed_after_seconds:g}): a run that does not set "
                f"PREFECT_FLOWS_HEARTBEAT_FREQUENCY heartbeats every "
                f"{PREFECT_DEFAULT_HEARTBEAT_SECONDS} s"
            )
        return settings

    def late_minutes(self, deployment: str) -> float:
        return self.late_after_minutes.get(deployment, self.default_late_minutes)


def deployment_run(client: Any, flow_run_id: UUID) -> Any:
    """The flow run an alert about ``flow_run_id`` names: the run itself if a deployment
    started it, else its nearest parent a deployment started (a step's subflow run: its
    pipeline run; a pipeline/nightly run that backfill started is one itself), else its
    root."""
    run = client.read_flow_run(flow_run_id)
    while run.deployment_id is None and run.parent_task_run_id is not None:
        run = client.read_flow_run(client.read_task_run(run.parent_task_run_id).flow_run_id)
    return run


def block_kind(url: str) -> str:
    """Which notification block a webhook URL gets: ``slack``, ``teams`` or ``webhook``."""
    host = (urlparse(url).hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host.endswith((".webhook.office.com", ".logic.azure.com")) or host == "outlook.office.com":
        return "teams"
    return "webhook"


def notification_block(url: str) -> Any:
    """The notification block that posts to ``url``: Slack's or Teams' own for their
    incoming-webhook URLs, else a generic JSON webhook (``{"subject", "text"}``)."""
    from prefect.blocks.notifications import (
        CustomWebhookNotificationBlock,
        MicrosoftTeamsWebhook,
        SlackWebhook,
    )

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"ALERT_WEBHOOK_URL must be an http(s) URL, got {url!r}")
    kind = block_kind(url)
    # The URL is the operator's own choice: a receiver inside their network is allowed.
    if kind == "slack":
        return SlackWebhook(url=url, allow_private_urls=True)
    if kind == "teams":
        return MicrosoftTeamsWebhook(url=url, allow_private_urls=True)
    # The URL as a secret, filled in when posting: a webhook's URL is its password.
    return CustomWebhookNotificationBlock(
        name="alert webhook",
        url="{{webhook_url}}",
        secrets={"webhook_url": url},
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        allow_private_urls=True,
    )


def _notify(block_id: UUID | None, subject: str, body: str) -> Any:
    if block_id is None:  # still recorded: the UI's event feed shows each firing
        return DoNothing()
    return SendNotification(block_document_id=block_id, subject=subject, body=body)


def build(
    settings: AlertSettings, deployments: dict[str, UUID], block_id: UUID | None
) -> list[AutomationCore]:
    """Our automations for the deployments (``flow/deployment`` name: id) on the server."""
    ours = {"prefect.resource.id": f"prefect.tag.{settings.tag}", "prefect.resource.role": "tag"}
    # A deployment's run, not its subflows': one alert per run a person started.
    started = [ours, {"prefect.resource.role": "deployment"}]
    runs = {"prefect.resource.id": "prefect.flow-run.*"}
    crashed_after = settings.crashed_after_seconds
    built = [
        AutomationCore(
            name=f"{PREFIX}failed",
            description="A run of the project's deployments ended Failed or Crashed.",
            trigger=EventTrigger(
                match=runs,
                match_related=started,
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[_notify(block_id, FAILED_SUBJECT, FAILED_BODY)],
        ),
        AutomationCore(
            name=f"{PREFIX}crashed",
            description=f"A running flow run of ours sent no heartbeat for {crashed_after:g} s: "
            "marked Crashed (which the failed alert sends).",
            trigger=EventTrigger(
                match=runs,
                match_related=ours,
                after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in ENDED)},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=dt.timedelta(seconds=crashed_after),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    name="Crashed",
                    message=CRASHED_MESSAGE.format(seconds=crashed_after),
                )
            ],
        ),
        AutomationCore(
            name=f"{PREFIX}data health",
            description="A step of the project's deployments committed data out of bounds.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "ray-text-pipeline.dataset.*"},
                match_related=started,
                expect={health.UNHEALTHY},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[_notify(block_id, UNHEALTHY_SUBJECT, UNHEALTHY_BODY)],
        ),
    ]
    for name, deployment_id in sorted(deployments.items()):
        minutes = settings.late_minutes(name)
        wait = max(10.0, minutes * 60 - LATE_MARK_SECONDS)
        built.append(
            AutomationCore(
                name=f"{PREFIX}late: {name}",
                description=f"A run of {name} not started {minutes:g} minutes after its time.",
                trigger=EventTrigger(
                    match=runs,
                    match_related={"prefect.resource.id": f"prefect.deployment.{deployment_id}"},
                    after={"prefect.flow-run.Late"},
                    expect={f"prefect.flow-run.{s}" for s in STARTED},
                    for_each={"prefect.resource.id"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=dt.timedelta(seconds=wait),
                ),
                actions=[
                    _notify(block_id, LATE_SUBJECT, LATE_BODY.replace("{minutes}", f"{minutes:g}"))
                ],
            )
        )
    return built


def _comparable(automation: Any) -> Any:
    """What of an automation this module sets, as JSON, sets (``expect``, ``after``,
    ``for_each``) sorted: their order is not the server's to keep."""

    def ordered(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: ordered(item) for key, item in value.items()}
        if isinstance(value, list):
            items = [ordered(item) for item in value]
            return sorted(items) if all(isinstance(i, str) for i in items) else items
        return value

    core = AutomationCore.model_validate(automation.model_dump())
    return ordered(
        core.model_dump(mode="json", include={"description", "trigger", "actions", "enabled"})
    )


def apply(client: Any, automations: list[AutomationCore]) -> dict[str, str]:
    """Make the server's automations named with :data:`PREFIX` exactly ``automations``:
    each created, replaced or left as it is, and ours not among them deleted. Returns
    what happened to each, by name."""
    existing: dict[str, list[Any]] = {}
    for automation in client.read_automations():
        if automation.name.startswith(PREFIX):
            existing.setdefault(automation.name, []).append(automation)
    done: dict[str, str] = {}
    for automation in automations:
        found = existing.pop(automation.name, [])
        for extra in found[1:]:  # two of one name (an interrupted apply): keep one
            client.delete_automation(extra.id)
        if not found:
            client.create_automation(automation)
            done[automation.name] = "created"
        elif _comparable(found[0]) == _comparable(automation):
            done[automation.name] = "unchanged"
        else:  # replaced in place: its id (and its page in the UI) stays
            client.update_automation(found[0].id, automation)
            done[automation.name] = "replaced"
    for name, stale in existing.items():
        for automation in stale:
            client.delete_automation(automation.id)
        done[name] = "deleted"
    return done


def tagged_deployments(client: Any, tag: str) -> dict[str, UUID]:
    """The server's deployments carrying ``tag``, by ``flow/deployment`` name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    found = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[tag]))
    )
    flows = {flow_id: client.read_flow(flow_id).name for flow_id in {d.flow_id for d in found}}
    return {f"{flows[d.flow_id]}/{d.name}": d.id for d in found}


def set_up(client: Any, settings: AlertSettings, webhook_url: str | None) -> dict[str, str]:
    """Save the notification block for ``webhook_url`` (if any; replacing ours), then
    :func:`apply` the automations for the tagged deployments on the server."""
    block_id = None
    if webhook_url:
        block_id = notification_block(webhook_url).save(BLOCK_NAME, overwrite=True)
    return apply(client, build(settings, tagged_deployments(client, settings.tag), block_id))
