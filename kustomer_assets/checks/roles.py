"""Does the API key carry the role each table needs? Asset checks per entity, plus a key-check job.

A key's roles cannot be edited and are invisible until a request is refused, so a missing role
otherwise shows up as a table that silently stays empty (optional roles are skipped with a
warning) or as a failed backfill. `role_granted` puts the answer next to each table in the UI:
when the same run has just loaded the table, that load proved the role and the check sends
nothing; otherwise (the table was skipped, failed or not part of the run) it sends one probe
request. `kustomer_key_check` probes every role at once, for the person setting up a new key.
Both use the probes of `kustomer_assets.checks.key_check`, derived from the entity specs they
are given (the spec table by default).
"""

from collections.abc import Sequence

import dagster as dg

from kustomer_assets.checks.key_check import (
    ERROR,
    PRESENT,
    KeyReport,
    RoleRow,
    check_key,
    check_role,
    unlocks,
)
from kustomer_assets.entities import ENTITIES, EntitySpec
from kustomer_assets.kustomer.errors import KustomerError
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.run_report import RunReport, SkippedRun

ROLE_GRANTED = "role_granted"
KEY_CHECK_JOB = "kustomer_key_check"


def _description(spec: EntitySpec) -> str:
    if spec.required:
        effect = "required: without it every run that loads this table fails, naming the role"
    else:
        effect = (
            "optional: without it this table is skipped with a warning and stays empty, while "
            "the other tables still load"
        )
    return (
        f"Whether the Kustomer API key may read {spec.name}: it needs `{spec.role}` ({effect}). "
        "Roles cannot be edited on a key; a missing one means creating a new key in Kustomer "
        "(Settings → Security → API Keys) and setting KUSTOMER_API_KEY. No request when the same "
        "run loaded the table (that proved the role), else one small request."
    )


def _result(
    spec: EntitySpec, row: RoleRow, *, unusable: bool = False, probed: bool = True
) -> dg.AssetCheckResult:
    # An unusable key or setting stops every table, optional or not: always ERROR then.
    error = spec.required or unusable
    return dg.AssetCheckResult(
        passed=row.status == PRESENT,
        severity=dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN,
        description=row.detail or f"{spec.role} is {row.status_text}.",
        metadata={
            "role": spec.role,
            "required": spec.required,
            "status": row.status_text,
            "detail": row.detail,
            "probed": probed,
        },
    )


def proven_by_this_run(
    context: dg.AssetCheckExecutionContext,
    spec: EntitySpec,
    entities: Sequence[EntitySpec],
    org: Org = DEFAULT_ORG,
) -> RoleRow | None:
    """The role as this run's own materialization of the asset proves it, or None when that
    proves nothing: no materialization in this run (the asset failed or was not selected), a
    skip (a missing optional role, a switched-off table) or no request sent (nothing to load)."""
    event = context.instance.get_latest_materialization_event(org.asset_key(spec.name))
    materialization = None if event is None else event.asset_materialization
    if event is None or materialization is None or event.run_id != context.run.run_id:
        return None
    metadata = materialization.metadata
    if SkippedRun.from_metadata(metadata) is not None:
        return None
    requests = RunReport.from_metadata(metadata).client.get("requests") or 0
    if requests <= 0:
        return None
    detail = (
        f"{spec.role} is present: this run loaded {spec.name} with the key "
        f"({int(requests)} requests), so no probe was sent."
    )
    return RoleRow(spec.role, spec.required, PRESENT, unlocks(spec.role, entities), detail)


def role_check(
    spec: EntitySpec, entities: Sequence[EntitySpec] = ENTITIES, org: Org = DEFAULT_ORG
) -> dg.AssetChecksDefinition:
    """`role_granted` on the spec's asset: passes without a request when this run loaded the
    asset, else probes only `spec.role` (with the probe `entities` give that role); never
    blocks the asset."""

    @dg.asset_check(
        asset=org.asset_key(spec.name),
        name=ROLE_GRANTED,
        description=_description(spec),
        blocking=False,
        required_resource_keys={org.kustomer_key},
    )
    def _role_granted(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        kustomer = org.kustomer(context)
        proven = proven_by_this_run(context, spec, entities, org)
        if proven is not None:
            return _result(spec, proven, probed=False)
        try:
            with kustomer.client(logger=context.log) as client:
                row = check_role(client, spec.role, entities)
        except KustomerError as exc:  # bad settings or key (messages are redacted)
            opens = unlocks(spec.role, entities)
            row = RoleRow(spec.role, spec.required, ERROR, opens, kustomer.explain(exc))
            return _result(spec, row, unusable=True)
        return _result(spec, row)

    return _role_granted


def build_role_checks(
    entities: Sequence[EntitySpec] = ENTITIES, org: Org = DEFAULT_ORG
) -> list[dg.AssetChecksDefinition]:
    """One `role_granted` check per entity."""
    return [role_check(spec, entities, org) for spec in entities]


role_checks: list[dg.AssetChecksDefinition] = build_role_checks()


def report_metadata(report: KeyReport) -> dict[str, object]:
    """The report as run metadata: a markdown table for people, plain fields for queries."""
    lines = ["| role | needed | status | unlocks | detail |", "|---|---|---|---|---|"]
    for r in report.rows:
        needed = "required" if r.required else "optional"
        cells = [r.role, needed, r.status_text, ", ".join(r.unlocks), r.detail]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return {
        "ok": report.ok,
        "summary": report.summary(),
        "requests": report.requests,
        "roles": dg.MetadataValue.md("\n".join(lines)),
        "missing_required": [r.role for r in report.missing_required],
        "missing_optional": [r.role for r in report.missing_optional],
        "report": dg.MetadataValue.json(report.as_dict()),
    }


def build_key_check_job(
    entities: Sequence[EntitySpec] = ENTITIES, org: Org = DEFAULT_ORG
) -> dg.JobDefinition:
    """The `kustomer_key_check` job: probes every role `entities` need."""

    @dg.op(
        name=org.name("check_kustomer_key"),
        description="Probe every role the connector uses with the configured Kustomer API key.",
        out=dg.Out(dg.Nothing),
        required_resource_keys={org.kustomer_key},
    )
    def check_kustomer_key(context: dg.OpExecutionContext):
        """Fails (naming what to fix) when a required role is missing or the key is unusable."""
        kustomer = org.kustomer(context)
        try:
            with kustomer.client(logger=context.log) as client:
                report = check_key(client, entities)
        except KustomerError as exc:
            raise dg.Failure(description=kustomer.explain(exc)) from None
        context.log.info("Kustomer API key check:\n%s", report.format_table())
        metadata = report_metadata(report)
        if not report.ok:
            raise dg.Failure(description=report.summary(), metadata=metadata)
        yield dg.Output(None, metadata=metadata)

    @dg.job(
        name=org.name(KEY_CHECK_JOB),
        description=(
            "Check which Kustomer roles the API key carries (about a dozen one-record "
            "requests); fails when a required role is missing. Run it after creating or "
            "rotating a key."
        ),
    )
    def _key_check_job() -> None:
        check_kustomer_key()

    return _key_check_job


key_check_job = build_key_check_job()


__all__ = [
    "KEY_CHECK_JOB",
    "ROLE_GRANTED",
    "build_key_check_job",
    "build_role_checks",
    "key_check_job",
    "report_metadata",
    "role_check",
    "role_checks",
]
