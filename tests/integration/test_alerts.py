"""Alerts as code against a real Prefect server: applied by name, an edit replaces the
automation it shapes, ours no longer built go, anyone else's stay; the settings file
and the webhook URL refused by name when wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prefect.automations import AutomationCore, DoNothing, EventTrigger
from prefect.client.orchestration import get_client

from tasks.errors import InputError
from tasks.orchestration import alerts

pytestmark = pytest.mark.usefixtures("prefect_server")
ROOT = Path(__file__).resolve().parents[2]


def _deployments(client, tag: str) -> dict[str, object]:
    """Two deployments carrying ``tag``, and one that does not."""
    flow_id = client.create_flow_from_name(f"alerted-{tag}")
    for name, tags in (("nightly", [tag]), ("default", [tag]), ("other", [])):
        client.create_deployment(flow_id=flow_id, name=name, tags=tags)
    return alerts.tagged_deployments(client, tag)


def _ours(client) -> dict[str, AutomationCore]:
    return {a.name: a for a in client.read_automations() if a.name.startswith(alerts.PREFIX)}


def test_applying_twice_changes_nothing_and_an_edit_replaces_what_it_shapes():
    with get_client(sync_client=True) as client:
        tag = "alerts-apply"
        deployments = _deployments(client, tag)
        assert set(deployments) == {f"alerted-{tag}/nightly", f"alerted-{tag}/default"}
        foreign = client.create_automation(
            AutomationCore(
                name="someone else's",
                trigger=EventTrigger(expect={"acme.backup.failed"}),
                actions=[DoNothing()],
            )
        )
        settings = alerts.AlertSettings(tag=tag, late_after_minutes={f"alerted-{tag}/nightly": 30})
        first = alerts.apply(client, alerts.build(settings, deployments, None))
        assert set(first.values()) == {"created"} and len(first) == 5
        ids = {name: a.id for name, a in _ours(client).items()}
        assert set(ids) == set(first)

        assert set(alerts.apply(client, alerts.build(settings, deployments, None)).values()) == {
            "unchanged"
        }
        edited = alerts.AlertSettings(tag=tag, late_after_minutes={f"alerted-{tag}/nightly": 45})
        done = alerts.apply(
            client,
            alerts.build(
                edited, {f"alerted-{tag}/nightly": deployments[f"alerted-{tag}/nightly"]}, None
            ),
        )
        late = f"{alerts.PREFIX}late: alerted-{tag}/nightly"
        assert done == {
            f"{alerts.PREFIX}failed": "unchanged",
            f"{alerts.PREFIX}crashed": "unchanged",
            f"{alerts.PREFIX}data health": "unchanged",
            late: "replaced",
            f"{alerts.PREFIX}late: alerted-{tag}/default": "deleted",
        }
        now = _ours(client)
        assert now[late].id == ids[late]  # replaced in place
        assert now[late].trigger.within == dt.timedelta(minutes=45) - dt.timedelta(seconds=15)
        assert client.read_automation(foreign) is not None  # not ours: left alone
        alerts.apply(client, [])  # what the next test starts from
        assert not _ours(client)


def test_a_webhook_url_gets_its_services_block():
    assert alerts.block_kind("https://hooks.slack.com/services/T0/B0/x") == "slack"
    assert alerts.block_kind("https://acme.webhook.office.com/webhookb2/x") == "teams"
    assert alerts.block_kind("https://prod-1.westus.logic.azure.com/workflows/x") == "teams"
    assert alerts.block_kind("https://hooks.slack.com.evil.example/x") == "webhook"
    assert alerts.block_kind("http://127.0.0.1:9000/hook") == "webhook"
    with pytest.raises(InputError, match="ALERT_WEBHOOK_URL must be an http"):
        alerts.notification_block("hooks.slack.com/services/x")
    # A webhook's URL is its password: kept as a secret in every block, used as given.
    for url in ("http://127.0.0.1:9000/hook?token=s3cret", "https://hooks.slack.com/s3cret"):
        block = alerts.notification_block(url)
        assert "s3cret" not in block.model_dump_json()
    generic = alerts.notification_block("http://127.0.0.1:9000/hook?token=s3cret")
    assert generic._build_request_args("body", "subject")["url"] == (
        "http://127.0.0.1:9000/hook?token=s3cret"
    )


def test_the_settings_are_the_repositorys_and_bad_ones_are_refused_by_name(tmp_path):
    settings = alerts.AlertSettings.load(ROOT / "deployments" / "alerts.yaml")
    assert settings.tag == "ray-text-pipeline"
    assert settings.late_minutes("pipeline/nightly") == 30
    assert settings.late_minutes("preprocess/default") == settings.default_late_minutes
    bad = tmp_path / "alerts.yaml"
    bad.write_text("tag: x\nlate_after_minutes: {default: 0.1}\n")
    with pytest.raises(InputError, match=r"alerts\.yaml: late_after_minutes must be at least"):
        alerts.AlertSettings.load(bad)
    bad.write_text("tag: x\ncrashed_after_seconds: 200\n")
    with pytest.raises(InputError, match=r"alerts\.yaml: crashed_after_seconds must be at least"):
        alerts.AlertSettings.load(bad)
    bad.write_text("late_after_minutes: {default: 5}\n")
    with pytest.raises(InputError, match=r"alerts\.yaml: not valid alert settings .*tag"):
        alerts.AlertSettings.load(bad)


def test_an_alert_names_the_run_a_deployment_started():
    """A step's subflow run: its pipeline's run. A run a backfill started through
    run_deployment (a child of the backfill's task): that run itself."""
    from prefect import flow, tags

    from flows import runs

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("alerted-lineage")
        deployment = client.create_deployment(flow_id=flow_id, name="nightly")
        backfill = client.create_flow_run_from_deployment(deployment)
        task = client.create_task_run(_task(), flow_run_id=backfill.id, dynamic_key="0")
        nightly = client.create_flow_run_from_deployment(deployment, parent_task_run_id=task.id)
        step_task = client.create_task_run(_task(), flow_run_id=nightly.id, dynamic_key="1")
        step = client.create_flow_run(_flow(), parent_task_run_id=step_task.id)
        assert alerts.deployment_run(client, step.id).id == nightly.id
        assert alerts.deployment_run(client, nightly.id).id == nightly.id
        assert alerts.deployment_run(client, backfill.id).id == backfill.id

    @flow
    def retried() -> None:  # an attempt after one that failed in a step
        runs.tag_flow_run("preprocess", "data/x")

    with tags("ray-text-pipeline", f"{alerts.FAILED_STEP_TAG}dedup"):
        state = retried(return_state=True)
    with get_client(sync_client=True) as client:
        tags_now = set(client.read_flow_run(state.state_details.flow_run_id).tags)
    assert "ray-text-pipeline" in tags_now and "stage:preprocess" in tags_now
    assert not any(tag.startswith(alerts.FAILED_STEP_TAG) for tag in tags_now)


def _task():
    from prefect import task

    @task
    def step() -> None:
        pass

    return step


def _flow():
    from prefect import flow

    @flow
    def step() -> None:
        pass

    return step
