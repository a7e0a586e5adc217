"""The engine's pure decisions: which fields to look at, what each side receives, conflicts, deletions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mapping import ConflictPolicy, DeletionPolicy, Direction, Side, Snapshot, TableMapping, loads_pack
from shared.sync import (
    DeletionAction,
    DependencyNotCoupled,
    Expected,
    MappingFailed,
    candidates,
    decide_deletion,
    plan_sync,
    settle,
)
from shared.sync.record import with_own_writes

PACK = """
name: t
version: "1"
systems: {erp: business_central, crm: dataverse}
mappings:
  - name: m
    erp: {entity: e, key: id}
    crm: {entity: c, key: cid}
    direction: bidirectional
    conflict: error
    fields:
      - {erp: a, crm: A}
      - {erp: b, crm: B}
      - {erp: up, crm: UP, direction: to_crm, transforms: [{type: uppercase}]}
      - {erp: back, crm: BACK, direction: to_erp}
"""
A, B, UP, BACK = "a ⇄ A", "b ⇄ B", "up ⇄ UP", "back ⇄ BACK"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def mapping() -> TableMapping:
    return loads_pack(PACK).mapping("m")


def identity(values: dict[str, Any], keys: set[str] | None = None, *, to: Side) -> Expected:
    """What the other side should hold for an identity mapping (uppercase for `up`)."""
    allowed = {A, B, UP} if to is Side.CRM else {A, B, BACK}
    exp = Expected()
    for k, v in values.items():
        if k in allowed and (keys is None or k in keys):
            exp.values[k] = v.upper() if k == UP and isinstance(v, str) else v
            exp.payload[k] = {k: exp.values[k]}
    return exp


def plan(mapping: TableMapping, base: Snapshot | None, erp: dict, crm: dict, *, source: Side = Side.ERP,
         policy: ConflictPolicy | None = None, modified: dict | None = None):
    values = {Side.ERP: erp, Side.CRM: crm}
    keys = candidates(mapping, base, values)
    expected = {Side.CRM: identity(erp, keys, to=Side.CRM), Side.ERP: identity(crm, keys, to=Side.ERP)}
    return plan_sync(mapping, source, base=base, values=values, expected=expected, keys=keys, policy=policy,
                     modified=modified)


def synced(erp: dict, crm: dict) -> Snapshot:
    return Snapshot(erp=dict(erp), crm=dict(crm))


ERP = {A: "1", B: "x", UP: "abc", BACK: "q"}
CRM = {A: "1", B: "x", UP: "ABC", BACK: "q"}


def test_an_unchanged_pair_has_no_candidates_and_a_first_sync_has_all(mapping: TableMapping) -> None:
    base = synced(ERP, CRM)
    assert candidates(mapping, base, {Side.ERP: ERP, Side.CRM: CRM}) == set()
    assert candidates(mapping, None, {Side.ERP: ERP, Side.CRM: CRM}) == {A, B, UP, BACK}
    assert candidates(mapping, base, {Side.ERP: {**ERP, B: "y"}, Side.CRM: CRM}) == {B}
    # null and "" are the same emptiness: not a change
    assert candidates(mapping, synced({**ERP, A: None}, {**CRM, A: ""}),
                      {Side.ERP: {**ERP, A: ""}, Side.CRM: {**CRM, A: None}}) == set()


def test_a_pair_that_differs_whatever_its_snapshot_says_is_settled_by_the_policy(mapping: TableMapping) -> None:
    # The snapshot holds the divergence itself (a crossing of the pair's two directions stored it): neither side
    # "changed" since, yet the plain field A differs. It is a conflict, settled by the policy, not "unchanged".
    erp, crm = {**ERP, A: "Visby"}, {**CRM, A: "Lund"}
    assert candidates(mapping, synced(erp, crm), {Side.ERP: erp, Side.CRM: crm}) == {A}
    p = plan(mapping, synced(erp, crm), erp, crm, policy=ConflictPolicy.ERP_WINS)
    assert p.push[Side.CRM] == {A} and not p.push[Side.ERP]
    assert [(c.field, c.winner) for c in p.conflicts] == [(A, Side.ERP)]


def test_different_fields_changed_on_both_sides_both_travel(mapping: TableMapping) -> None:
    p = plan(mapping, synced(ERP, CRM), {**ERP, A: "2"}, {**CRM, B: "y"})
    assert p.push == {Side.CRM: {A}, Side.ERP: {B}}
    assert p.conflicts == []


def test_both_sides_changed_to_agreeing_values_is_not_a_conflict(mapping: TableMapping) -> None:
    p = plan(mapping, synced(ERP, CRM), {**ERP, A: "2"}, {**CRM, A: "2"})
    assert p.push == {Side.CRM: set(), Side.ERP: set()} and p.conflicts == []


@pytest.mark.parametrize(("policy", "modified", "winner"), [
    (ConflictPolicy.ERROR, {}, None),
    (ConflictPolicy.ERP_WINS, {}, Side.ERP),
    (ConflictPolicy.CRM_WINS, {}, Side.CRM),
    (ConflictPolicy.NEWEST_WINS, {Side.ERP: T0, Side.CRM: T0 + dt.timedelta(seconds=1)}, Side.CRM),
    (ConflictPolicy.NEWEST_WINS, {Side.ERP: T0 + dt.timedelta(seconds=1), Side.CRM: T0}, Side.ERP),
    (ConflictPolicy.NEWEST_WINS, {Side.ERP: T0, Side.CRM: T0}, Side.ERP),  # a tie keeps the ERP value
    # No timestamp on one side (F&O): the change still to come wins, here the CRM's (the sync is from the ERP).
    (ConflictPolicy.NEWEST_WINS, {Side.ERP: T0}, Side.CRM),
])
def test_same_field_changed_on_both_sides_follows_the_policy(mapping: TableMapping, policy: ConflictPolicy,
                                                              modified: dict, winner: Side | None) -> None:
    p = plan(mapping, synced(ERP, CRM), {**ERP, A: "erp"}, {**CRM, A: "crm", B: "y"}, policy=policy,
             modified=modified)
    [conflict] = p.conflicts
    assert (conflict.field, conflict.base, conflict.erp, conflict.crm) == (A, "1", "erp", "crm")
    assert conflict.winner is winner
    assert p.push[Side.ERP] == ({A, B} if winner is Side.CRM else {B})  # B is no conflict: it travels anyway
    assert p.push[Side.CRM] == ({A} if winner is Side.ERP else set())
    assert len(p.unresolved) == (1 if winner is None else 0)


def test_the_mapping_policy_applies_without_an_override(mapping: TableMapping) -> None:
    crm_wins = mapping.model_copy(update={"conflict": ConflictPolicy.CRM_WINS})
    assert plan(crm_wins, synced(ERP, CRM), {**ERP, A: "e"}, {**CRM, A: "c"}).push[Side.ERP] == {A}
    assert plan(mapping, synced(ERP, CRM), {**ERP, A: "e"}, {**CRM, A: "c"}).unresolved


def test_a_one_way_field_edited_on_its_target_is_set_back_from_its_source(mapping: TableMapping) -> None:
    p = plan(mapping, synced(ERP, CRM), ERP, {**CRM, UP: "EDITED", BACK: "r"}, source=Side.CRM)
    assert p.push == {Side.CRM: {UP}, Side.ERP: {BACK}}


def test_a_first_sync_goes_one_way_from_the_triggering_record(mapping: TableMapping) -> None:
    erp, crm = {A: "1", B: "x", UP: "abc", BACK: "q"}, {A: "other", B: "x", UP: "ABC", BACK: "z"}
    assert plan(mapping, None, erp, crm, source=Side.ERP).push == {Side.CRM: {A}, Side.ERP: {BACK}}
    assert plan(mapping, None, erp, crm, source=Side.CRM).push == {Side.CRM: set(), Side.ERP: {A, BACK}}


def test_a_field_that_failed_to_map_fails_the_plan_only_when_it_must_be_written(mapping: TableMapping) -> None:
    base = synced(ERP, CRM)
    values = {Side.ERP: {**ERP, A: "2"}, Side.CRM: CRM}
    keys = candidates(mapping, base, values)
    broken = Expected(errors={A: "bad value"})
    p = plan_sync(mapping, Side.ERP, base=base, values=values, keys=keys,
                  expected={Side.CRM: broken, Side.ERP: identity(CRM, keys, to=Side.ERP)})
    assert p.errors == {Side.CRM: {A}, Side.ERP: set()} and p.push[Side.CRM] == set()
    failure = broken.failure(p.errors[Side.CRM])
    assert isinstance(failure, MappingFailed) and failure.message == "a ⇄ A: bad value"
    values = {Side.ERP: ERP, Side.CRM: {**CRM, B: "y"}}
    keys = candidates(mapping, base, values)
    unused = Expected(errors={B: "unused"})
    p = plan_sync(mapping, Side.CRM, base=base, values=values, keys=keys,
                  expected={Side.CRM: unused, Side.ERP: identity(values[Side.CRM], keys, to=Side.ERP)})
    assert p.errors == {Side.CRM: set(), Side.ERP: set()} and p.push[Side.ERP] == {B}
    assert unused.failure(p.errors[Side.CRM]) is None


def test_an_unresolved_lookup_is_reported_as_a_dependency_not_a_mapping_error() -> None:
    exp = Expected(errors={"x": "dependency not coupled: …", "y": "bad"}, unresolved={"x"})
    assert isinstance(exp.failure({"x", "y"}), DependencyNotCoupled)
    assert isinstance(exp.failure({"y"}), MappingFailed)


def test_settle_without_a_policy_to_settle_leaves_it_open() -> None:
    assert settle(ConflictPolicy.ERROR, {Side.ERP: T0, Side.CRM: T0}) is None


@pytest.mark.parametrize("source", [Side.ERP, Side.CRM])
def test_newest_wins_without_a_modified_on_lets_the_change_still_to_come_win(source: Side) -> None:
    # F&O entities carry no modified-on: the side whose notice is not being processed changed last.
    assert settle(ConflictPolicy.NEWEST_WINS, {Side.ERP: None, Side.CRM: T0}, source) is source.other
    assert settle(ConflictPolicy.NEWEST_WINS, {Side.ERP: None, Side.CRM: T0}) is None  # nothing to tell by
    later = T0 + dt.timedelta(seconds=1)
    assert settle(ConflictPolicy.NEWEST_WINS, {Side.ERP: later, Side.CRM: T0}, Side.ERP) is Side.ERP  # times first


@pytest.mark.parametrize(("direction", "policy", "deleted", "action"), [
    ("bidirectional", "remove_coupling", Side.ERP, DeletionAction.REMOVE_COUPLING),
    ("bidirectional", "propagate", Side.CRM, DeletionAction.DELETE_OTHER),
    ("bidirectional", "restore", Side.CRM, DeletionAction.RESTORE),
    ("bidirectional", "error", Side.ERP, DeletionAction.FAIL),
    ("to_crm", "propagate", Side.ERP, DeletionAction.DELETE_OTHER),
    ("to_crm", "propagate", Side.CRM, DeletionAction.FAIL),      # a deletion conflict, not sent back to the ERP
    ("to_crm", "restore", Side.CRM, DeletionAction.RESTORE),
    ("to_crm", "restore", Side.ERP, DeletionAction.FAIL),        # no data flows to the ERP to restore from
    ("to_erp", "remove_coupling", Side.ERP, DeletionAction.REMOVE_COUPLING),
])
def test_deletions_follow_the_policy_and_the_direction(mapping: TableMapping, direction: str, policy: str,
                                                       deleted: Side, action: DeletionAction) -> None:
    fields = [f for f in mapping.fields if f.direction is None]
    m = mapping.model_copy(update={"direction": Direction(direction), "deletion": DeletionPolicy(policy),
                                   "fields": fields})
    got, why = decide_deletion(m, deleted)
    assert got is action
    assert f"{deleted.value} record was deleted" in why


values_st = st.fixed_dictionaries({A: st.sampled_from(["1", "2", "", None]), B: st.sampled_from(["x", "y"]),
                                   UP: st.sampled_from(["abc", "def"]), BACK: st.sampled_from(["q", "r"])})


@settings(max_examples=200, deadline=None)
@given(base_erp=values_st, erp=values_st, crm_edit=values_st, source=st.sampled_from(list(Side)),
       policy=st.sampled_from([ConflictPolicy.ERP_WINS, ConflictPolicy.CRM_WINS]), first=st.booleans())
def test_applying_a_plan_converges_and_its_echo_plans_nothing(base_erp: dict, erp: dict, crm_edit: dict,
                                                               source: Side, policy: ConflictPolicy,
                                                               first: bool) -> None:
    """Whatever both sides did since the last sync: after writing what the plan says, the pair agrees on every
    field the directions carry, and planning again against the new snapshot (the echo) writes nothing."""
    mapping = loads_pack(PACK).mapping("m")
    base_crm = {k: (v.upper() if k == UP and v else v) for k, v in base_erp.items()}
    base = None if first else synced(base_erp, base_crm)
    values = {Side.ERP: dict(erp), Side.CRM: dict(crm_edit)}
    keys = candidates(mapping, base, values)
    expected = {Side.CRM: identity(values[Side.ERP], keys, to=Side.CRM),
                Side.ERP: identity(values[Side.CRM], keys, to=Side.ERP)}
    p = plan_sync(mapping, source, base=base, values=values, expected=expected, keys=keys, policy=policy)
    assert not p.unresolved
    for side in p.writes:
        for key in p.push[side]:
            values[side][key] = expected[side].values[key]
    new_base = synced(values[Side.ERP], values[Side.CRM])
    assert candidates(mapping, new_base, values) == set()  # the echo: nothing to look at
    again = plan(mapping, new_base, values[Side.ERP], values[Side.CRM], source=source.other)
    assert again.writes == []
    # one-way fields always end as their source says; bidirectional ones agree
    up = values[Side.ERP][UP]
    assert values[Side.CRM][UP] == (up.upper() if up else up)
    assert values[Side.ERP][BACK] == values[Side.CRM][BACK]
    if base is not None:
        assert (values[Side.ERP][A] or None) == (values[Side.CRM][A] or None)


def test_our_own_write_that_lost_the_coupling_race_is_not_a_change(mapping: TableMapping) -> None:
    # We wrote A = "" to the ERP (carrying a Sales edit), then another writer stored the coupling first with
    # A = "x" on both sides; meanwhile a person set A = "y" in Sales. Retried, our "" is ours, not the ERP's
    # change: the person's "y" travels, erp_wins does not overwrite it with our "".
    base = synced({**ERP, A: "x"}, {**CRM, A: "x"})
    erp, crm = {**ERP, A: ""}, {**CRM, A: "y"}
    blind = plan(mapping, base, erp, crm, policy=ConflictPolicy.ERP_WINS)
    assert blind.push[Side.CRM] == {A}  # without knowing it was ours: the ERP "wins" with our own write
    knowing = with_own_writes(base, {Side.ERP: {A: ""}}, {Side.ERP: erp, Side.CRM: crm})
    p = plan(mapping, knowing, erp, crm, policy=ConflictPolicy.ERP_WINS)
    assert p.push[Side.ERP] == {A} and not p.push[Side.CRM] and p.conflicts == []
    # A value we wrote that a person has changed since is theirs again.
    assert with_own_writes(base, {Side.ERP: {A: "old"}}, {Side.ERP: erp, Side.CRM: crm}) == base
