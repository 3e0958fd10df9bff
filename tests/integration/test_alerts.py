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


def test_the_settings_are_the_repositorys_and_bad_ones_are_refused_by_name(tmp_path):
    settings = alerts.AlertSettings.load(ROOT / "deployments" / "alerts.yaml")
    assert settings.tag == "ray-text-pipeline"
    assert settings.late_minutes("pipeline/nightly") == 30
    assert settings.late_minutes("preprocess/default") == settings.default_late_minutes
    bad = tmp_path / "alerts.yaml"
    bad.write_text("tag: x\nlate_after_minutes: {default: 0.1}\n")
    with pytest.raises(InputError, match=r"alerts\.yaml: late_after_minutes must be at least"):
        alerts.AlertSettings.load(bad)
    bad.write_text("tag: x\ncrashed_after_seconds: 30\n")
    with pytest.raises(InputError, match=r"alerts\.yaml: crashed_after_seconds must be at least"):
        alerts.AlertSettings.load(bad)
    bad.write_text("late_after_minutes: {default: 5}\n")
    with pytest.raises(InputError, match=r"alerts\.yaml: not valid alert settings .*tag"):
        alerts.AlertSettings.load(bad)
