"""The state rules: what a part may do, and what its parts make of a message."""

from __future__ import annotations

import pytest

from worker.store.states import FINAL_STATES, State, can_move, derive_message_state

Q, SENDING, R, U, S, D, F, X = (
    State.QUEUED,
    State.SENDING,
    State.RETRYING,
    State.UNKNOWN,
    State.SENT,
    State.DELIVERED,
    State.FAILED,
    State.REJECTED,
)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_a_final_state_never_changes(final: State) -> None:
    assert not any(can_move(final, other) for other in State)


@pytest.mark.parametrize(
    ("current", "new"),
    [(S, Q), (S, SENDING), (D, F), (F, D), (R, Q), (S, R)],
)
def test_no_move_backwards(current: State, new: State) -> None:
    assert not can_move(current, new)


def test_unknown_goes_back_to_queued_only_through_reconciliation_rules() -> None:
    assert can_move(U, Q) and can_move(U, S)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([Q], Q),
        ([SENDING], SENDING),
        ([R], R),
        ([U], U),
        ([S], S),
        ([D], D),
        ([S, Q], SENDING),
        ([D, Q], SENDING),
        ([D, R], R),
        ([S, S], S),
        ([D, S], S),
        ([D, D], D),
        ([D, F], F),
        ([S, X], X),
        ([F, X], X),
        ([], X),
    ],
)
def test_message_state_is_derived_from_its_parts(parts: list[State], expected: State) -> None:
    assert derive_message_state(parts) is expected
