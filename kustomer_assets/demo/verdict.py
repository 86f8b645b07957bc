"""A run's verdict for the terminal: its status, its checks' results and what failed, read from
the Dagster instance's event records (its log text is not an interface).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kustomer_assets.assets.progress import format_duration

RUN_STATUS_WORDS = {"SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "was canceled"}


@dataclass
class RunVerdict:
    run_id: str
    status: str
    seconds: float | None
    checks: Counter[str]
    """Check results by verdict: passed, warned, failed."""
    not_passed: Counter[str]
    """'warned: partition_fresh on brands' -> how many partitions."""
    failures: list[str]
    """'brands: <the one sentence that says what to fix>' per failed step."""

    def lines(self, with_start_up: float) -> list[str]:
        took = "" if self.seconds is None else f" in {format_duration(self.seconds)}"
        head = f"run {self.run_id[:8]} {self.status}{took} ({format_duration(with_start_up)} "
        head += "with start-up)"
        total = sum(self.checks.values())
        if total and self.checks["passed"] == total:
            head += f"; {total} check results, all passed"
        elif total:
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.checks.items()))
            head += f"; {total} check results: {counts}"
        details = [
            f"  {what}" + (f" ({n} partitions)" if n > 1 else "")
            for what, n in sorted(self.not_passed.items())
        ]
        return [head, *details, *(f"  failed: {failure}" for failure in self.failures)]


def run_verdict(dagster_home: Path, run_id: str) -> RunVerdict | None:
    """The run's status and check results from the instance itself: Dagster's log text is not
    an interface, its event records are."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        record = instance.get_run_record_by_id(run_id)
        if record is None:
            return None
        evaluations = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
        ).records
        step_failures = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1_000
        ).records
    seconds = None
    if record.start_time and record.end_time:
        seconds = record.end_time - record.start_time
    verdict = RunVerdict(
        run_id=run_id,
        status=RUN_STATUS_WORDS.get(record.dagster_run.status.value, "ended"),
        seconds=seconds,
        checks=Counter(),
        not_passed=Counter(),
        failures=[],
    )
    for entry in step_failures:
        event = entry.event_log_entry.dagster_event
        data = event.step_failure_data if event else None
        if data is None:
            continue
        # A dg.Failure carries the one sentence that says what to fix; anything else its error.
        said = data.user_failure_data.description if data.user_failure_data else None
        if not said and data.error is not None:
            cause = data.error.cause or data.error
            said = cause.message.strip().splitlines()[-1]
        said = said or "see the log"
        step = event.step_key or "run"
        verdict.failures.append(said if said.startswith(f"{step}:") else f"{step}: {said}")
    for entry in evaluations:
        event = entry.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if evaluation is None:
            continue
        if evaluation.passed:
            verdict.checks["passed"] += 1
            continue
        kind = "warned" if evaluation.severity == dg.AssetCheckSeverity.WARN else "failed"
        verdict.checks[kind] += 1
        verdict.not_passed[
            f"{kind}: {evaluation.check_name} on {evaluation.asset_key.to_user_string()}"
        ] += 1
    return verdict
