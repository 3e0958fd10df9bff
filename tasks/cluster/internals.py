"""The one place this project uses private APIs of Ray, Prefect or prefect-ray.

Everything else imports public APIs only. What is here has no public equivalent (each
function says which public APIs were checked). Every private name is listed in
``PRIVATE_NAMES`` and resolved through :func:`private`, which raises
:class:`PrivateApiChanged` naming it when an upgrade removed it or changed how it is
called; tests/test_internals.py resolves each name and calls each function on a real
Ray, so an upgrade that breaks one fails there with that message, not in a pipeline run.

The reports (:func:`spilled_bytes`, :func:`dashboard_url`) still degrade to None in a
pipeline run, a summary without them beats a failed stage, but with a warning naming
what broke. This module imports no Prefect: it runs in Ray workers too.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

_INTERNAL_API = "ray._private.internal_api"
_SERVICES = "ray._private.services"
_AUTOSCALER_UTIL = "ray.autoscaler._private.util"

# Every private name used below; tests/test_internals.py checks each one.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    (_INTERNAL_API, "get_state_from_address"),
    (_INTERNAL_API, "get_memory_info_reply"),
    (_SERVICES, "get_webui_url_from_internal_kv"),
    (_AUTOSCALER_UTIL, "prepare_config"),
    (_AUTOSCALER_UTIL, "validate_config"),
)

# The distribution that ships each top-level module, for the version in the messages.
_DISTRIBUTIONS = {"ray": "ray", "prefect": "prefect", "prefect_ray": "prefect-ray"}


class PrivateApiChanged(RuntimeError):
    """A private API this project uses is gone, or no longer works as it did."""


def changed(what: str, how: str) -> PrivateApiChanged:
    """The error for ``what`` (a dotted private name) having changed ``how``."""
    dist = _DISTRIBUTIONS[what.split(".")[0]]
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    return PrivateApiChanged(f"{what} {how} in {dist} {version}: update tasks/cluster/internals.py")


def private(module: str, name: str) -> Any:
    """``module.name``, a private name listed in ``PRIVATE_NAMES``."""
    if (module, name) not in PRIVATE_NAMES:
        raise ValueError(f"{module}.{name} is not in PRIVATE_NAMES: list it to have it tested")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise changed(f"{module}.{name}", f"cannot be imported ({exc})") from exc
    except AttributeError as exc:
        raise changed(f"{module}.{name}", "is gone") from exc


def _call(module: str, name: str, *args: Any) -> Any:
    """``module.name(*args)``, once its signature is known to still take ``args``."""
    fn = private(module, name)
    try:
        inspect.signature(fn).bind(*args)
    except TypeError as exc:
        how = f"no longer takes {len(args)} argument(s) ({exc})"
        raise changed(f"{module}.{name}", how) from exc
    return fn(*args)


def _field(value: Any, path: str, source: str) -> Any:
    """``value.<path>`` of what ``source`` returned."""
    for part in path.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as exc:
            raise changed(source, f"returns no {path}") from exc
    return value


def cluster_spilled_bytes(gcs_address: str | None = None) -> int:
    """Bytes the object stores of the cluster at ``gcs_address`` (default: the one this
    process is connected to) have spilled since it started.

    Public APIs checked: the state API (``ray.util.state``) lists and summarizes objects
    but has no object store statistics (and needs the dashboard); ``ray memory
    --stats-only`` prints them, through the same private functions; the Prometheus
    metric ``ray_spill_manager_objects_bytes`` needs a metrics agent and Prometheus, and
    lags by the report interval. Ray Data reads its own spill statistics this way too.
    """
    if gcs_address is None:
        import ray

        gcs_address = ray.get_runtime_context().gcs_address
    state = _call(_INTERNAL_API, "get_state_from_address", gcs_address)
    reply = _call(_INTERNAL_API, "get_memory_info_reply", state)
    spilled = _field(
        reply, "store_stats.spilled_bytes_total", f"{_INTERNAL_API}.get_memory_info_reply"
    )
    return int(spilled)


def spilled_bytes() -> int | None:
    """Bytes the connected cluster's object stores have spilled since it started; None
    if this process is not connected to Ray, or, with a warning, if they are unknown."""
    import ray

    if not ray.is_initialized():
        return None
    try:
        return cluster_spilled_bytes()
    except Exception as exc:  # a report: a summary without it beats a failed stage
        log.warning(
            "object store spill statistics unavailable (read through %s): %s: %s",
            _INTERNAL_API,
            type(exc).__name__,
            exc,
        )
        return None


def dashboard_url() -> str | None:
    """The Ray dashboard's address as the connected cluster publishes it; None if it runs
    none, if this process is not connected to Ray, or, with a warning, if it is unknown.

    Public APIs checked: ``ray.init()``'s context (``dashboard_url``,
    ``address_info["webui_url"]``) is right in the driver that started or joined the
    cluster, but in a Ray worker, where the stages run, it names the configured address
    even when no dashboard runs; the runtime context has no dashboard address.
    """
    import ray

    if not ray.is_initialized():
        return None
    source = f"{_SERVICES}.get_webui_url_from_internal_kv"
    try:
        url = _call(_SERVICES, "get_webui_url_from_internal_kv")
        if url is not None and not isinstance(url, str):
            raise changed(source, f"returns a {type(url).__name__}, not a str")
    except Exception as exc:  # a report: a summary without it beats a failed stage
        log.warning("Ray dashboard address unavailable (read through %s): %s", source, exc)
        return None
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


def validate_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """A Ray cluster launcher config (``ray up``'s YAML) with Ray's defaults filled in,
    validated as ``ray up`` validates it; raises what Ray raises for an invalid one.

    Public APIs checked: ``ray.autoscaler.sdk`` fills out defaults (``fillout_defaults``)
    but does not validate; its ``bootstrap_config`` and ``create_or_update_cluster``
    validate but also create cloud resources.
    """
    prepared = _call(_AUTOSCALER_UTIL, "prepare_config", config)
    _call(_AUTOSCALER_UTIL, "validate_config", prepared)
    return prepared
