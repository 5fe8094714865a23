"""The ordering promise: per endpoint and address, one delivery at a time, in arrival
order; different addresses concurrently up to the endpoint's concurrency."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.webhooks.queues import EndpointQueue, Pending


def item(n: int, address: str, due: float = 0.0, partition: int = 0) -> Pending:
    return Pending(f"k{n}".encode(), partition, address, n, due)


def test_one_address_goes_in_order_one_at_a_time() -> None:
    q = EndpointQueue(1, concurrency=8)
    for n in (3, 1, 2):  # arrival order is seq, whatever order they are loaded in
        assert q.add(item(n, "a"))
    assert not q.add(item(1, "a"))  # queued already
    [first] = q.take_due(now=10)
    assert first.seq == 1
    assert q.take_due(now=10) == []  # the next waits for the first to end
    q.finished(first, ended=False, due=20)  # a retry: still first
    assert q.take_due(now=15) == []
    [again] = q.take_due(now=20)
    assert again is first
    q.finished(first, ended=True)
    assert [p.seq for p in q.take_due(now=20)] == [2]


def test_addresses_go_concurrently_up_to_the_concurrency() -> None:
    q = EndpointQueue(1, concurrency=2)
    for n, address in enumerate("abc"):
        q.add(item(n, address))
    taken = q.take_due(now=1)
    assert {p.address for p in taken} == {"a", "b"}
    assert q.in_flight == 2
    q.finished(taken[0], ended=True)
    assert [p.address for p in q.take_due(now=1)] == ["c"]


def test_not_due_yet_waits_and_next_due_says_when() -> None:
    q = EndpointQueue(1, concurrency=4)
    q.add(item(1, "a", due=50))
    q.add(item(2, "b", due=30))
    assert q.take_due(now=10) == []
    assert q.next_due() == 30
    assert [p.address for p in q.take_due(now=30)] == ["b"]
    assert q.next_due() == 50


def test_a_late_arrival_never_overtakes_the_delivery_in_flight() -> None:
    q = EndpointQueue(1, concurrency=4)
    q.add(item(5, "a"))
    [flying] = q.take_due(now=1)
    q.add(item(2, "a"))  # an older one found late (a partition loaded again)
    q.finished(flying, ended=True)
    assert [p.seq for p in q.take_due(now=1)] == [2]


def test_revoked_partitions_and_inactive_endpoints_take_their_deliveries_out() -> None:
    q = EndpointQueue(1, concurrency=4)
    q.add(item(1, "a", partition=0))
    q.add(item(2, "b", partition=1))
    q.add(item(3, "b", partition=1))
    [flying_a, flying_b] = sorted(q.take_due(now=1), key=lambda p: p.seq)
    assert [p.seq for p in q.drop_partition(1)] == [2, 3]
    q.finished(flying_b, ended=False, due=5)  # dropped meanwhile: ignored
    assert len(q) == 1
    assert q.drain() == []  # the one left is in flight
    q.finished(flying_a, ended=False, due=2)
    assert [p.seq for p in q.drain()] == [1]
    assert len(q) == 0


# (operation, number, address, due): add item ``number`` of ``address`` due at ``due``;
# take what is due at ``number``; finish the oldest attempt in flight, ended if ``number``
# is odd, else due again at ``due``.
Op = tuple[str, int, str, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "take", "finish"]),
        st.integers(0, 30),
        st.sampled_from("abcd"),
        st.integers(0, 10),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(script=ops, concurrency=st.integers(1, 3))
def test_invariants_hold_whatever_happens(script: list[Op], concurrency: int) -> None:
    q = EndpointQueue(1, concurrency)
    flying: list[Pending] = []
    added: dict[bytes, int] = {}  # step at which each queued delivery arrived
    started: dict[bytes, int] = {}  # step of its first attempt
    for step, (operation, n, address, due) in enumerate(script):
        if operation == "add":
            if q.add(item(n, address, float(due))):
                added[f"k{n}".encode()] = step
                started.pop(f"k{n}".encode(), None)
        elif operation == "take":
            taken = q.take_due(float(n))
            for p in taken:
                began = started.setdefault(p.key, step)
                # The oldest of its address among those queued when its attempts began:
                # arrival order per address (one that arrives later waits its turn).
                same = [o for o in q.items() if o.address == p.address]
                earlier = [o.seq for o in same if added[o.key] < began]
                assert p.seq == min(earlier or [o.seq for o in same])
            flying += taken
        elif flying:
            q.finished(flying.pop(0), ended=n % 2 == 1, due=float(due))
        addresses = [p.address for p in flying]
        assert len(addresses) == len(set(addresses)), "two of one address in flight"
        assert len(flying) <= concurrency
        assert q.in_flight == len(flying)
        assert len(q) == len({p.key for p in q.items()})
