"""Apply deployments/alerts.yaml to the Prefect server at PREFECT_API_URL (`make alerts`,
and `make run` after it deploys). ALERT_WEBHOOK_URL, if set, is where each alert goes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect.client.orchestration import get_client

from tasks.errors import InputError
from tasks.orchestration import alerts

SETTINGS = Path(__file__).with_name("alerts.yaml")
KINDS = {"slack": "Slack", "teams": "Microsoft Teams", "webhook": "a JSON webhook"}


def main() -> None:
    url = os.environ.get("ALERT_WEBHOOK_URL") or None
    try:
        settings = alerts.AlertSettings.load(SETTINGS)
        with get_client(sync_client=True) as client:
            done = alerts.set_up(client, settings, url)
    except InputError as exc:
        sys.exit(f"alerts: {exc}")
    for name, what in done.items():
        print(f"  {what:9} {name}")
    where = (
        f"each alert posts to {KINDS[alerts.block_kind(url)]}"
        if url
        else "no ALERT_WEBHOOK_URL: each alert shows in the UI's event feed only"
    )
    print(f"alerts: {len(done)} automations applied; {where}")


if __name__ == "__main__":
    main()
