"""New-client distribution policies (product.md §3), without a database."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from widget.domain.distribution import FIRST_REPLY, ROUND_ROBIN, Candidate, eligible, is_eligible, policy_for
from widget.domain.roles import HEAD, QC, SELLER


def reps(n: int) -> list[Candidate]:
    return [Candidate(i, f"Rep {i}", SELLER, True, True) for i in range(1, n + 1)]


def run_round_robin(pool: list[Candidate], clients: int) -> tuple[Counter[int], list[Candidate]]:
    """Hand out clients the way the service does: the chosen rep's last turn becomes the new turn."""
    policy = policy_for(ROUND_ROBIN)
    counts: Counter[int] = Counter()
    turn = max((c.last_turn for c in pool), default=0)
    for _ in range(clients):
        chosen = policy.decide(pool).assign_to
        assert chosen is not None
        turn += 1
        counts[chosen] += 1
        pool = [replace(c, last_turn=turn) if c.employee_id == chosen else c for c in pool]
    return counts, pool


def test_eligibility_needs_role_toggle_and_active():
    assert is_eligible(Candidate(1, "a", SELLER, True, True))
    assert is_eligible(Candidate(1, "a", HEAD, True, True))
    assert not is_eligible(Candidate(1, "a", QC, True, True))
    assert not is_eligible(Candidate(1, "a", None, True, True))
    assert not is_eligible(Candidate(1, "a", SELLER, False, True))
    assert not is_eligible(Candidate(1, "a", SELLER, True, False))


@pytest.mark.parametrize("n,k", [(1, 5), (3, 4), (7, 10)])
def test_round_robin_is_fair_after_k_rounds(n: int, k: int):
    counts, _ = run_round_robin(reps(n), n * k)
    assert sorted(counts.values()) == [k] * n


def test_round_robin_goes_in_turn():
    policy = policy_for(ROUND_ROBIN)
    pool = reps(3)
    order = []
    for turn in range(1, 7):
        chosen = policy.decide(pool).assign_to
        order.append(chosen)
        pool = [replace(c, last_turn=turn) if c.employee_id == chosen else c for c in pool]
    assert order == [1, 2, 3, 1, 2, 3]


def test_rep_switched_off_or_inactive_is_skipped_from_the_next_client_on():
    _counts, pool = run_round_robin(reps(3), 3)
    pool = [replace(c, is_active=False) if c.employee_id == 2 else c for c in pool]
    more, pool = run_round_robin(pool, 4)
    assert more == {1: 2, 3: 2}
    pool = [replace(c, gets_new_clients=False) if c.employee_id == 3 else c for c in pool]
    only, pool = run_round_robin(pool, 2)
    assert only == {1: 2}


def test_rep_coming_back_is_next_once_and_is_not_flooded():
    _, pool = run_round_robin(reps(3), 3)
    away = [replace(c, gets_new_clients=False) if c.employee_id == 3 else c for c in pool]
    _, away = run_round_robin(away, 10)
    back = [replace(c, gets_new_clients=True) if c.employee_id == 3 else c for c in away]
    counts, _ = run_round_robin(back, 6)
    assert counts == {1: 2, 2: 2, 3: 2}


def test_first_reply_offers_everyone_eligible():
    pool = [*reps(3), Candidate(9, "QC", QC, True, True), Candidate(8, "Off", SELLER, False, True)]
    decision = policy_for(FIRST_REPLY).decide(pool)
    assert decision.offer_to == (1, 2, 3) and decision.assign_to is None


@pytest.mark.parametrize("mode", [FIRST_REPLY, ROUND_ROBIN])
def test_nobody_eligible_is_a_decision_not_an_error(mode: str):
    pool = [Candidate(1, "a", SELLER, False, True), Candidate(2, "b", HEAD, True, False)]
    assert eligible(pool) == []
    assert policy_for(mode).decide(pool).nobody


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="weighted"):
        policy_for("weighted")
