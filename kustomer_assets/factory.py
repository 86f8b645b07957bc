"""Definitions for one Kustomer org, from Python (`kustomer_definitions`) or from a spec tuple and
ready resources (`build_definitions`).

`build_definitions` turns a tuple of entity specs into everything a code location holds for one
org: one asset per entity, its checks, the sensors and schedule that watch it, the key-check
job that probes its role, `removed_records`, `feedback` and the lake maintenance job, all named
by the `Org` (`org.py`). `kustomer_definitions` is the same with plain settings instead of
resources, checked before anything is built: it is what the Dagster component (`component.py`)
and this repository's own code location (`definitions.py`) call. Several calls with different
prefixes merge into one code location (`dg.Definitions.merge`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import dagster as dg

from kustomer_assets.assets.feedback import build_feedback_asset
from kustomer_assets.assets.raw import build_entity_assets
from kustomer_assets.assets.removals import build_removed_records, searched
from kustomer_assets.automation import (
    build_automation_condition_sensor,
    build_finalize_yesterday_schedule,
    build_kustomer_changes_sensor,
    default_automation_condition_sensor,
)
from kustomer_assets.checks import (
    build_key_check_job,
    build_role_checks,
    freshness_policy,
    quality_checks,
)
from kustomer_assets.checks.freshness import FreshnessWindows, freshness_windows
from kustomer_assets.entities import CONVERSATIONS, ENTITIES, ENTITIES_BY_NAME, EntitySpec
from kustomer_assets.kustomer import KustomerConfigError
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.maintenance import build_lake_maintenance
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.removals import REMOVED_RECORDS
from kustomer_assets.resources import (
    STORAGE_VARIABLES,
    kustomer_from_env,
    lake_from_env,
    resources_from_env,
    storage_options_from_env,
)
from kustomer_assets.run_recovery import SENSOR_NAME as KILLED_RUNS
from kustomer_assets.run_recovery import build_killed_run_sensor, killed_run_sensor
from kustomer_assets.webhooks.sensor import build_kustomer_webhook_events_sensor
from kustomer_assets.webhooks.store import folder_beside

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class KustomerSetupError(ValueError):
    """Settings that cannot make a working code location; the message says what to change."""


@dataclass(frozen=True)
class Automation:
    """What runs without a click, per org."""

    running: bool | None = None
    """Sensors and the nightly schedule start running; None: KUSTOMER_AUTOMATION_RUNNING."""
    first_sync_days: int | None = None
    """Days the change sensor's first tick loads; None: KUSTOMER_FIRST_SYNC_DAYS (7)."""
    webhook_store: Path | None = None
    """The webhook event log's folder; None: from the environment (`webhooks/store.py`)."""
    webhooks: bool = True
    """False when no event log serves this org: the webhook sensor is left out and the change
    sensor never rests."""
    freshness: FreshnessWindows | None = field(default=None)
    """None: KUSTOMER_FRESHNESS_WARN_HOURS / _FAIL_HOURS."""


def build_definitions(
    entities: tuple[EntitySpec, ...] = ENTITIES,
    resources: Mapping[str, object] | None = None,
    org: Org = DEFAULT_ORG,
    automation: Automation | None = None,
    code_location: bool = True,
) -> dg.Definitions:
    """Everything for `entities` of one org; `resources` default to the environment's
    (`resources.py`), keyed by the org's resource keys.

    `code_location`: these definitions are the whole code location (this repository's own),
    so they set its executor and evaluate every asset's automation condition. Added to
    someone else's project (False) they touch nothing of theirs: their executor stays, the
    automation sensor watches only the org's assets, and the sensors and schedule launch the
    org's own in-process job (`<prefix>_kustomer_sync`)."""
    automation = automation or Automation()
    windows = automation.freshness or freshness_windows()
    policy = freshness_policy(windows)
    has_base = any(spec.name == CONVERSATIONS.name for spec in entities)
    watched = bool(searched(entities))
    tables = {spec.name for spec in entities} | ({REMOVED_RECORDS} if watched else set())
    built = [
        *build_entity_assets(entities, org),
        *([build_feedback_asset(org, tables)] if has_base else []),
    ]
    assets = [
        *dg.map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=policy), built),
        # Runs weekly: it carries its own freshness policy.
        *([build_removed_records(entities, org)] if watched else []),
    ]
    raw = dg.AssetSelection.assets(*org.asset_keys(spec.name for spec in entities))
    # Steps share one process, so they share the run's budget (see the executor below).
    sync = (
        None
        if code_location
        else dg.define_asset_job(
            org.name("kustomer_sync"),
            selection=raw,
            executor_def=dg.in_process_executor,
            description="What the org's sensors and schedule launch: raw tables, one process.",
        )
    )
    maintenance, maintenance_weekly = build_lake_maintenance(org)
    sensor_status = schedule_status = None
    if automation.running is not None:
        sensor_status = dg.DefaultSensorStatus.RUNNING if automation.running else None
        sensor_status = sensor_status or dg.DefaultSensorStatus.STOPPED
        schedule_status = (
            dg.DefaultScheduleStatus.RUNNING
            if automation.running
            else dg.DefaultScheduleStatus.STOPPED
        )
    sensors = [
        build_kustomer_changes_sensor(
            entities=entities,
            org=org,
            default_status=sensor_status,
            first_sync_days=automation.first_sync_days,
            webhook_store=automation.webhook_store,
            webhooks=automation.webhooks,
            job=sync,
        ),
        # The whole location evaluates every asset's condition (the sensor Dagster would
        # make); in someone else's project each org evaluates its own.
        default_automation_condition_sensor
        if code_location
        else build_automation_condition_sensor(org, assets),
        killed_run_sensor
        if code_location
        else build_killed_run_sensor(name=org.name(KILLED_RUNS), org_prefix=org.prefix),
    ]
    if automation.webhooks:
        sensors.append(
            build_kustomer_webhook_events_sensor(
                entities=entities,
                org=org,
                default_status=sensor_status,
                store_folder=automation.webhook_store,
                job=sync,
            )
        )
    return dg.Definitions(
        assets=assets,
        # Every asset waits on the same Kustomer budget (and the org's pool), so a subprocess
        # per step (about 1.5 s each on a 2-core machine, for ~70 assets and checks) buys no
        # parallelism, and steps in one process share one budget; one process per run is
        # faster end to end and never overspends.
        executor=dg.in_process_executor if code_location else None,
        asset_checks=[
            *quality_checks(assets, windows, entities=entities, org=org),
            *build_role_checks(entities, org),
        ],
        jobs=[build_key_check_job(entities, org), maintenance, *([sync] if sync else [])],
        schedules=[
            build_finalize_yesterday_schedule(
                entities=entities, org=org, default_status=schedule_status, job=sync
            ),
            maintenance_weekly,
        ],
        sensors=sensors,
        resources=dict(resources) if resources is not None else resources_from_env(),
    )


def select_entities(names: Sequence[str] | None) -> tuple[EntitySpec, ...]:
    """The spec entries named, in the spec table's order; every entry when None. Refuses an
    unknown name and an entry whose inputs (`follows`) are left out."""
    if names is None:
        return ENTITIES
    if not names:
        raise KustomerSetupError(
            "entities is empty: name the entities to load, or leave it out to load them all."
        )
    unknown = sorted(set(names) - set(ENTITIES_BY_NAME))
    if unknown:
        raise KustomerSetupError(
            f"Unknown Kustomer entities {', '.join(unknown)}: choose from "
            f"{', '.join(ENTITIES_BY_NAME)}."
        )
    chosen = tuple(spec for spec in ENTITIES if spec.name in set(names))
    for spec in chosen:
        lacking = [name for name in spec.follows if name not in set(names)]
        if lacking:
            raise KustomerSetupError(
                f"{spec.name} is loaded from {', '.join(lacking)}: add "
                f"{'it' if len(lacking) == 1 else 'them'} to entities, or leave {spec.name} out."
            )
    return chosen


def _env_name(value: str, what: str) -> str:
    if not _ENV_NAME.match(value):
        # Never echo the value: a key pasted here is a secret.
        raise KustomerSetupError(
            f"{what} must be the NAME of an environment variable (like KUSTOMER_API_KEY), not "
            "its value; put the value in that variable (or the project's .env file)."
        )
    return value


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def kustomer_definitions(
    *,
    subdomain: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "KUSTOMER_API_KEY",
    delta_root: str | None = None,
    storage_options: Mapping[str, str] | None = None,
    storage_option_env: Mapping[str, str] | None = None,
    entities: Sequence[str] | None = None,
    switched_off: Sequence[str] | None = None,
    org_requests_per_minute: int | None = None,
    search_requests_per_minute: int | None = None,
    freshness_warn_hours: float | None = None,
    freshness_fail_hours: float | None = None,
    first_sync_days: int | None = None,
    automation: bool | None = None,
    prefix: str = "",
    group: str | None = None,
    webhook_store: str | None = None,
    base_dir: Path | None = None,
    code_location: bool = False,
) -> dg.Definitions:
    """The Definitions of one Kustomer org, from plain settings.

    Without a `prefix` (one org in the code location) every unset setting falls back to the
    environment variable README documents (KUSTOMER_SUBDOMAIN, KUSTOMER_DELTA_ROOT, ...), so
    `kustomer_definitions()` is this repository's own code location. With a prefix, nothing
    is read from those variables (they cannot tell two orgs apart): give the subdomain (or
    base URL) and the Delta root. The key is only ever named (`api_key_env`): Dagster reads it
    when a run starts. Relative paths are taken from `base_dir` (default: the working
    directory). `code_location` True: these are the whole code location (see
    `build_definitions`); False, the default, for a project that has assets of its own.
    """
    org = Org(prefix=prefix, group=group)
    specs = select_entities(entities)
    _check_counts(
        first_sync_days=first_sync_days,
        org_requests_per_minute=org_requests_per_minute,
        search_requests_per_minute=search_requests_per_minute,
    )
    single = not prefix
    kustomer = _kustomer_resource(
        specs,
        org,
        subdomain=subdomain,
        base_url=base_url,
        api_key_env=api_key_env,
        switched_off=switched_off,
        org_requests_per_minute=org_requests_per_minute,
        search_requests_per_minute=search_requests_per_minute,
    )
    lake = _lake_resource(org, delta_root, storage_options, storage_option_env, base_dir)
    store, webhooks = _webhook_store(webhook_store, lake.root, single, base_dir)
    return build_definitions(
        specs,
        org.resources(kustomer, lake),
        org,
        Automation(
            running=automation,
            first_sync_days=first_sync_days,
            webhook_store=store,
            webhooks=webhooks,
            freshness=_windows(freshness_warn_hours, freshness_fail_hours),
        ),
        code_location=code_location,
    )


def _where(org: Org) -> str:
    """How messages name the org's settings: `delta_root of Kustomer org acme`."""
    return f" of Kustomer org {org.prefix}" if org.prefix else ""


def _kustomer_resource(
    specs: tuple[EntitySpec, ...],
    org: Org,
    *,
    subdomain: str | None,
    base_url: str | None,
    api_key_env: str,
    switched_off: Sequence[str] | None,
    org_requests_per_minute: int | None,
    search_requests_per_minute: int | None,
) -> KustomerResource:
    """The org's API resource: given settings first, then (one org alone) the environment's."""
    key_env = _env_name(api_key_env, "api_key_env")
    single, where = not org.prefix, _where(org)
    explicit = bool(subdomain or base_url)
    names = {"KUSTOMER_API_KEY": key_env}
    if explicit:
        names |= {
            "KUSTOMER_SUBDOMAIN": f"subdomain{where}",
            "KUSTOMER_BASE_URL": f"base_url{where}",
        }
    env_kustomer = kustomer_from_env() if single else None
    if not explicit and env_kustomer is not None:
        subdomain, base_url = env_kustomer.subdomain, env_kustomer.base_url
    if not (subdomain or base_url) and not single:
        # One org alone may be configured later (the run names the missing setting).
        raise KustomerSetupError(
            f"Kustomer org {org.prefix}: set subdomain (acme for "
            "https://acme.api.kustomerapp.com) or base_url."
        )
    if switched_off is not None:
        toggled = {spec.name for spec in specs if spec.toggle is not None}
        wrong = sorted(set(switched_off) - toggled)
        if wrong:
            raise KustomerSetupError(
                f"switched_off names {', '.join(wrong)}, which cannot be switched off: "
                f"choose from {', '.join(sorted(toggled)) or 'none'} (or leave them out of "
                "entities)."
            )
    defaults = env_kustomer or KustomerResource(subdomain="", api_key="")
    values = {name: getattr(defaults, name) for name in KustomerResource.model_fields}
    values.update(
        subdomain=subdomain or "",
        base_url=base_url or None,
        api_key=dg.EnvVar(key_env),
        setting_names=names,
        org_requests_per_minute=defaults.org_requests_per_minute
        if org_requests_per_minute is None
        else org_requests_per_minute,
        search_requests_per_minute=defaults.search_requests_per_minute
        if search_requests_per_minute is None
        else search_requests_per_minute,
        switched_off=list(switched_off) if switched_off is not None else defaults.switched_off,
    )
    kustomer = KustomerResource(**values)
    if explicit:
        _check_settings(kustomer)
    return kustomer


def _lake_resource(
    org: Org,
    delta_root: str | None,
    storage_options: Mapping[str, str] | None,
    storage_option_env: Mapping[str, str] | None,
    base_dir: Path | None,
) -> DeltaLakeResource:
    """The org's Delta root; secret storage options only ever as `EnvVar`s."""
    given, single = delta_root is not None, not org.prefix
    if delta_root is None:
        if not single:
            raise KustomerSetupError(
                f"Kustomer org {org.prefix}: set delta_root (a "
                "folder or s3://, gs://, az:// URI); each org needs its own."
            )
        delta_root = lake_from_env().root
    delta_root = _from_base(delta_root, base_dir)
    secret = sorted(set(storage_options or {}) & _SECRET_OPTIONS)
    if secret:
        raise KustomerSetupError(
            f"storage_options would show {', '.join(secret)} in the UI and run config: move "
            f"{'it' if len(secret) == 1 else 'them'} to storage_option_env, naming the "
            "variable that holds the value."
        )
    options: dict[str, str] = dict(storage_options or {})
    for option, variable in (storage_option_env or {}).items():
        options[option] = dg.EnvVar(_env_name(variable, f"storage_option_env.{option}"))
    if single and not options:
        options = storage_options_from_env(delta_root)
    return DeltaLakeResource(
        root=delta_root,
        storage_options=options,
        setting_names={"KUSTOMER_DELTA_ROOT": f"delta_root{_where(org)}"} if given else {},
    )


_SECRET_OPTIONS = frozenset(
    name for family in STORAGE_VARIABLES.values() for name, secret in family.items() if secret
)


def _check_counts(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or value < 1):
            raise KustomerSetupError(f"{name} must be 1 or more, got {value!r}.")


def _check_settings(kustomer: KustomerResource) -> None:
    """The subdomain, URL and budgets checked now, when the code location loads, with a
    stand-in key (the real one is read only when a run starts)."""
    try:
        replace(kustomer.settings(), api_key="stand-in").validate()
    except KustomerConfigError as error:
        raise KustomerSetupError(kustomer.explain(error)) from None


def _from_base(path: str, base_dir: Path | None) -> str:
    """A relative local path taken from `base_dir` (a component's project); URIs unchanged."""
    if base_dir is None or not _is_local(path):
        return path
    local = Path(path.removeprefix("file://")).expanduser()
    return str(local if local.is_absolute() else base_dir / local)


def _windows(warn: float | None, fail: float | None) -> FreshnessWindows | None:
    if warn is None and fail is None:
        return None
    current = freshness_windows()
    windows = FreshnessWindows(
        warn=timedelta(hours=warn) if warn is not None else current.warn,
        fail=timedelta(hours=fail) if fail is not None else current.fail,
    )
    if windows.warn <= timedelta(0) or windows.warn > windows.fail:
        raise KustomerSetupError(
            "freshness_warn_hours must be above 0 and at most freshness_fail_hours: a table is "
            "reported late before it is reported failed."
        )
    return windows


def _webhook_store(
    explicit: str | None, root: str, single: bool, base_dir: Path | None
) -> tuple[Path | None, bool]:
    """(event log folder, whether webhooks serve the org). One org alone keeps the environment's
    rules (`webhooks/store.py`: KUSTOMER_WEBHOOK_STORE, else beside a local
    KUSTOMER_DELTA_ROOT); an org with a prefix has its own log beside its tables, or none when
    the tables live on an object store and no folder is given."""
    if explicit:
        if not _is_local(explicit):
            raise KustomerSetupError(
                "webhook_store must be a local folder (the event log is SQLite)."
            )
        return Path(_from_base(explicit.removeprefix("file://"), base_dir)).expanduser(), True
    if single:
        return None, True  # the environment's rules, read at each tick
    beside = folder_beside(root)
    return beside, beside is not None


__all__ = [
    "Automation",
    "KustomerSetupError",
    "build_definitions",
    "kustomer_definitions",
    "select_entities",
]
