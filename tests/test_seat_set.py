"""A license's seats (R20) as a persistent set: the same answers as a frozenset.

Each seat taken or released makes a new seat set; a frozenset was copied
whole for that (250 µs at 10,000 seats, in the decision and again in the
views). :class:`SeatSet` shares all but a path with the set it came from.
"""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing.adapters.mapper import converter
from esmc_licensing.domain import license
from esmc_licensing.domain.ids import PublicId
from esmc_licensing.domain.seat_set import EMPTY, SeatSet

_SEATS = st.tuples(st.sampled_from(["c1", "c2", "c3", "c4", "c5"]), st.sampled_from(["P", "Q"]))


@given(steps=st.lists(st.tuples(st.booleans(), _SEATS), max_size=40))
def test_r20_a_seat_set_answers_as_a_frozenset_after_any_takes_and_releases(
    steps: list[tuple[bool, tuple[str, str]]],
) -> None:
    seats, expected = EMPTY, frozenset[tuple[str, str]]()
    history = [(seats, expected)]
    for take, seat in steps:
        if take:
            seats, expected = seats.with_seat(seat), expected | {seat}
        else:
            seats, expected = seats.without_seat(seat), expected - {seat}
        history.append((seats, expected))
        assert len(seats) == len(expected)
        assert set(seats) == expected
        assert seats == expected
        assert all((s in seats) == (s in expected) for s in [seat, ("c9", "P")])
    # every earlier set is unchanged (persistent), and equal sets hash alike
    for earlier, its_frozenset in history:
        assert set(earlier) == its_frozenset
        assert earlier == SeatSet(its_frozenset)
        assert hash(earlier) == hash(SeatSet(its_frozenset))


def test_r20_seats_are_stored_as_the_pairs_a_frozenset_was_stored_as() -> None:
    """Snapshots and view rows written before keep reading the same."""
    state = license.LicenseState(
        public_id=PublicId("SEA-T00-001"), seats=SeatSet([("c1", "P"), ("c2", "Q")])
    )
    data = orjson.loads(orjson.dumps(converter.unstructure(state)))
    assert sorted(data["seats"]) == [["c1", "P"], ["c2", "Q"]]
    assert converter.structure(data, license.LicenseState) == state
