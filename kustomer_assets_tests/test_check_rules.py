"""Which quality checks exist follows the spec entries alone: a made-up entity gets its
uniqueness, freshness, completeness (when searched) and reference checks, named from its
spec; nothing is built for a table that is not among the assets."""

from dataclasses import replace

import dagster as dg
import pytest

from kustomer_assets.checks.completeness import COMPLETE_VS_API
from kustomer_assets.checks.feedback import FEEDBACK_INPUTS_LOADED, ONE_ROW_PER_LIVE_CONVERSATION
from kustomer_assets.checks.quality import quality_checks
from kustomer_assets.checks.references import ReferenceRule, reference_rules
from kustomer_assets.checks.uniqueness import UNIQUE_VERSIONS
from kustomer_assets.entities import CONVERSATIONS, ENTITIES, Join, Reference
from kustomer_assets.feedback.build import FEEDBACK
from kustomer_assets_tests.made_up_specs import GADGETS, MADE_UP, PARTS, WIDGETS


def check_keys(checks: list[dg.AssetChecksDefinition]) -> set[tuple[str, str]]:
    return {(c.check_key.asset_key.path[-1], c.check_key.name) for c in checks}


def test_made_up_entities_get_their_checks() -> None:
    assets = [dg.AssetSpec(spec.name) for spec in MADE_UP]
    keys = check_keys(quality_checks(assets, entities=MADE_UP))
    assert keys == {
        *((spec.name, UNIQUE_VERSIONS) for spec in MADE_UP),
        *((spec.name, "partition_fresh") for spec in MADE_UP),
        ("gadgets", COMPLETE_VS_API),  # the only searched one
        ("gadgets", "known_widget"),  # guaranteed join
        ("parts", "known_gadget_item"),  # guaranteed list join, named by the target's type
    }


def test_reference_rules_follow_guaranteed_joins_and_references() -> None:
    rules = reference_rules(MADE_UP)
    assert rules == [
        ReferenceRule("gadgets", "widget_id", "widgets", "gadget_item", "widget"),
        ReferenceRule("parts", "gadget_ids", "gadgets", "part", "gadget_item", many=True),
    ]
    # A target that is not there checks nothing (gadgets' unguaranteed join never does).
    assert reference_rules([GADGETS, PARTS]) == [rules[1]]
    referenced = replace(WIDGETS, reference=Reference("parts", "widget_id"))
    assert reference_rules([referenced, PARTS])[-1] == ReferenceRule(
        "parts", "widget_id", "widgets", "part", "widget"
    )


def test_a_join_that_is_also_a_reference_is_checked_once() -> None:
    joined = replace(PARTS, joins=(Join("widget_id", "widgets", guaranteed=True),))
    referenced = replace(WIDGETS, reference=Reference("parts", "widget_id"))
    assert len(reference_rules([referenced, joined])) == 1
    clash = replace(
        PARTS,
        joins=(
            Join("widget_id", "widgets", guaranteed=True),
            Join("other_widget_id", "widgets", guaranteed=True),
        ),
    )
    with pytest.raises(ValueError, match=r"parts\.known_widget"):
        reference_rules([WIDGETS, clash])


def test_the_spec_table_rules_are_todays() -> None:
    assert {(r.table, r.column, r.target, r.check_name) for r in reference_rules(ENTITIES)} == {
        ("messages", "conversation_id", "conversations", "known_conversation"),
        ("notes", "conversation_id", "conversations", "known_conversation"),
        ("satisfaction", "conversation_id", "conversations", "known_conversation"),
        ("conversations", "customer_id", "customers", "known_customer"),
    }


def test_feedback_checks_need_feedback_and_its_base() -> None:
    feedback = dg.AssetSpec(FEEDBACK)
    base = dg.AssetSpec(CONVERSATIONS.name)
    with_base = check_keys(quality_checks([feedback, base]))
    assert {(FEEDBACK, ONE_ROW_PER_LIVE_CONVERSATION), (FEEDBACK, FEEDBACK_INPUTS_LOADED)} <= (
        with_base
    )
    assert not any(a == FEEDBACK for a, _ in check_keys(quality_checks([feedback])))
    made_up = [feedback, *(dg.AssetSpec(s.name) for s in MADE_UP)]
    assert not any(a == FEEDBACK for a, _ in check_keys(quality_checks(made_up, entities=MADE_UP)))
