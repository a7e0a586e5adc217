"""The pure rules of match-based coupling: priority groups' keys, case sensitivity, blanks, uniqueness."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.connectors import Record
from shared.mapping import Direction, Pack
from shared.sync.match import MatchStatus, decide, group_key, match_filter, target_key

FLOW = Direction.TO_CRM


def rec(i: str, **values: object) -> Record:
    return Record("accounts", i, values)


def test_group_key_maps_ignores_case_and_skips_blanks(pack: Pack) -> None:
    customers = pack.mapping("customers")
    [numbers, names] = customers.match_groups()
    assert group_key(customers, numbers, FLOW, {"number": "C01"}) == ("c01",)
    assert group_key(customers, numbers, FLOW, {"number": ""}) is None
    assert group_key(customers, names, FLOW, {"displayName": None}) is None
    assert target_key(numbers, FLOW, {"accountnumber": "C01"}) == target_key(numbers, FLOW, {"accountnumber": "c01"})
    assert target_key(numbers, FLOW, {"accountnumber": ""}) is None
    # The value is compared as the target would hold it: currencies trim and upper-case the code.
    currencies = pack.mapping("currencies")
    [codes] = currencies.match_groups()
    assert group_key(currencies, codes, FLOW, {"code": " eur "}) == target_key(codes, FLOW, {"isocurrencycode": "EUR"})
    assert match_filter(numbers, FLOW, [{"accountnumber": "O'Neil"}]) == "(accountnumber eq 'O''Neil')"


def test_case_sensitive_field_does_not_match_other_case(pack: Pack) -> None:
    customers = pack.mapping("customers")
    [numbers, _] = customers.match_groups()
    field = numbers[0].model_copy(update={"match": numbers[0].match.model_copy(update={"case_sensitive": True})})
    assert group_key(customers, [field], FLOW, {"number": "C01"}) != target_key([field], FLOW, {"accountnumber": "c01"})


def test_decide_unique_uncoupled_only() -> None:
    a, b, c = rec("a"), rec("b"), rec("c")
    out = decide({"s1": ("k1",), "s2": ("k2",), "s3": ("k3",)},
                 {("k1",): [a], ("k2",): [b, c], ("k3",): [c]}, coupled=lambda i: i == "c")
    assert out["s1"].status is MatchStatus.MATCHED and out["s1"].target == a
    assert out["s2"].status is MatchStatus.MATCHED and out["s2"].target == b  # c is coupled: b is unique
    assert "s3" not in out  # only a coupled candidate: no match in this group
    twice = decide({"s1": ("k",), "s2": ("k",)}, {("k",): [a]}, coupled=lambda i: False)
    assert {m.status for m in twice.values()} == {MatchStatus.AMBIGUOUS}


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.sampled_from(["k1", "k2", "k3"]), max_size=6),
       st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.lists(st.sampled_from("abcd"), max_size=3,
                                                                        unique=True)),
       st.sets(st.sampled_from("abcd")))
def test_decide_never_couples_one_target_twice_or_a_coupled_one(keys: dict[str, str], cands: dict[str, list[str]],
                                                                coupled: set[str]) -> None:
    out = decide({s: (k,) for s, k in keys.items()}, {(k,): [rec(i) for i in ids] for k, ids in cands.items()},
                 coupled=lambda i: i in coupled)
    targets = [m.target.id for m in out.values() if m.status is MatchStatus.MATCHED and m.target]
    assert len(targets) == len(set(targets))
    assert not set(targets) & coupled
    for s, m in out.items():
        if m.status is MatchStatus.MATCHED:
            assert m.target is not None and m.target.id in cands.get(keys[s], [])
