"""Reliability suite: real Dagster materializations against a hostile emulator on loopback.

Every test compares the written tables with the emulator's ground truth (ids, versions and
values), never only an exit code: a run that "succeeds" with a record missing is the failure
these tests exist to catch.
"""
