"""The event store contract, run against every backend (each backend subclasses ``StoreContract``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.envelope import Append
from events.errors import ConcurrencyConflict
from events.hashchain import GENESIS
from events.memory_store import MemoryEventStore
from events.registration_events import Polled
from events.replay import Projection, fold, replay, snapshot_of
from events.sqlite_store import SqliteEventStore
from events.store import EventStore
from tests.events.eventtypes import TEST_CATALOGUE, Deposited, Withdrawn


class Balances(msgspec.Struct, frozen=True):
    by_account: dict[str, int] = {}
    operations: int = 0


def evolve(state: Balances, event: object) -> Balances:
    match event:
        case Deposited(account=account, amount=amount):
            delta = amount
        case Withdrawn(account=account, amount=amount):
            delta = -amount
        case _:
            return state
    balances = dict(state.by_account)
    balances[account] = balances.get(account, 0) + delta
    return Balances(balances, state.operations + 1)


BALANCES = Projection(name="balances", initial=Balances(), evolve=evolve, state_type=Balances)


def deposit(account: str, amount: int) -> Deposited:
    return Deposited(account=account, amount=amount)


class StoreContract:
    """Every backend must behave exactly like this."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        store = self.make_store(tmp_path)
        yield store
        store.close()

    def make_store(self, tmp_path: Path) -> EventStore:
        raise NotImplementedError

    def test_empty_log_has_genesis_head(self, store: EventStore) -> None:
        head = store.head()
        assert (head.seq, head.hash) == (0, GENESIS)
        assert list(store.read()) == []
        assert store.stream_version("account:a") == 0

    def test_append_assigns_gapless_sequence_and_stream_versions(self, store: EventStore) -> None:
        first = store.append_events(
            "a", [deposit("a", 1), deposit("a", 2)], server_time=100.0, monotonic=5.0
        )
        second = store.append_events("b", [deposit("b", 3)], server_time=101.5, monotonic=6.5)
        third = store.append_events("a", [deposit("a", 4)], server_time=102.0, monotonic=7.0)
        records = first + second + third
        assert [r.seq for r in records] == [1, 2, 3, 4]
        assert [(r.stream, r.version) for r in records] == [("a", 1), ("a", 2), ("b", 1), ("a", 3)]
        assert [r.server_time for r in records] == [100.0, 100.0, 101.5, 102.0]
        assert list(store.read()) == records
        assert store.head().seq == 4 and store.head().hash == records[-1].hash

    def test_read_range_stream_and_type_filters(self, store: EventStore) -> None:
        store.append_events("a", [deposit("a", 1)], server_time=1.0, monotonic=1.0)
        store.append_events("b", [Withdrawn(account="b", amount=2)], server_time=2.0, monotonic=2.0)
        store.append_events("a", [Withdrawn(account="a", amount=3)], server_time=3.0, monotonic=3.0)
        store.append_events("b", [deposit("b", 4)], server_time=4.0, monotonic=4.0)
        assert [r.seq for r in store.read(2, 3)] == [2, 3]
        assert [r.seq for r in store.read(stream="a")] == [1, 3]
        assert [r.seq for r in store.read(2, stream="b")] == [2, 4]
        assert [r.seq for r in store.read(types=["test.withdrawn.v1"])] == [2, 3]
        assert [r.seq for r in store.read(3, types=["test.deposited.v1"])] == [4]
        assert store.stream_version("a") == 2

    def test_expected_version_conflict_is_refused_and_nothing_is_written(
        self, store: EventStore
    ) -> None:
        store.append_events(
            "a", [deposit("a", 1)], server_time=1.0, monotonic=1.0, expected_version=0
        )
        with pytest.raises(
            ConcurrencyConflict, match="expected version 0 but the log holds version 1"
        ) as info:
            store.append_events(
                "a", [deposit("a", 2)], server_time=2.0, monotonic=2.0, expected_version=0
            )
        assert (info.value.stream, info.value.expected, info.value.actual) == ("a", 0, 1)
        assert store.head().seq == 1
        store.append_events(
            "a", [deposit("a", 2)], server_time=2.0, monotonic=2.0, expected_version=1
        )
        assert store.stream_version("a") == 2

    def test_batch_is_all_or_nothing(self, store: EventStore) -> None:
        store.append_events("b", [deposit("b", 1)], server_time=1.0, monotonic=1.0)
        batch = [
            Append(stream="a", events=[deposit("a", 5)], server_time=2.0, monotonic=2.0),
            Append(
                stream="b",
                events=[deposit("b", 6)],
                server_time=2.0,
                monotonic=2.0,
                expected_version=0,
            ),
        ]
        with pytest.raises(ConcurrencyConflict):
            store.append(batch)
        assert store.head().seq == 1
        assert store.stream_version("a") == 0
        # The same stream twice in one batch: versions continue within the batch.
        records = store.append(
            [
                Append(
                    stream="a",
                    events=[deposit("a", 1)],
                    server_time=3.0,
                    monotonic=3.0,
                    expected_version=0,
                ),
                Append(
                    stream="a",
                    events=[deposit("a", 2)],
                    server_time=3.0,
                    monotonic=3.0,
                    expected_version=1,
                ),
            ]
        )
        assert [(r.seq, r.version) for r in records] == [(2, 1), (3, 2)]

    def test_hash_chain_is_identical_across_backends(self, store: EventStore) -> None:
        reference = MemoryEventStore(TEST_CATALOGUE)
        for target in (store, reference):
            target.append_events(
                "a", [deposit("a", 1), deposit("a", 2)], server_time=1.25, monotonic=0.5
            )
            target.append_events(
                "b", [Withdrawn(account="b", amount=7, note="é")], server_time=2.0, monotonic=1.0
            )
        assert [r.hash for r in store.read()] == [r.hash for r in reference.read()]

    def test_verify_passes_on_an_untouched_log(self, store: EventStore) -> None:
        for i in range(20):
            store.append_events(
                f"s{i % 3}", [deposit("a", i)], server_time=float(i), monotonic=float(i)
            )
        stream, snap = snapshot_of(BALANCES, replay(store, BALANCES)[0], store.head().seq)
        store.append_events(stream, [snap], server_time=21.0, monotonic=21.0)
        report = store.verify({"balances": BALANCES})
        assert report.ok, report.describe()
        assert report.records == 21 and report.snapshots_checked == 1

    def test_verify_detects_a_snapshot_that_is_not_the_fold(self, store: EventStore) -> None:
        store.append_events("a", [deposit("a", 10)], server_time=1.0, monotonic=1.0)
        wrong = Balances({"a": 999}, 1)
        stream, snap = snapshot_of(BALANCES, wrong, 1)
        store.append_events(stream, [snap], server_time=2.0, monotonic=2.0)
        report = store.verify({"balances": BALANCES})
        assert not report.ok
        assert report.problem is not None and report.problem.seq == 2
        assert "differs from the fold" in report.problem.why

    def test_latest_snapshot_respects_at_or_before(self, store: EventStore) -> None:
        store.append_events("a", [deposit("a", 1)], server_time=1.0, monotonic=1.0)
        stream, snap1 = snapshot_of(BALANCES, replay(store, BALANCES)[0], 1)
        store.append_events(stream, [snap1], server_time=2.0, monotonic=2.0)
        store.append_events("a", [deposit("a", 2)], server_time=3.0, monotonic=3.0)
        stream, snap2 = snapshot_of(BALANCES, replay(store, BALANCES)[0], 3)
        store.append_events(stream, [snap2], server_time=4.0, monotonic=4.0)
        latest = store.latest_snapshot("balances")
        assert latest is not None and latest.seq == 4
        earlier = store.latest_snapshot("balances", at_or_before=2)
        assert earlier is not None and earlier.seq == 2
        assert store.latest_snapshot("balances", at_or_before=0) is None
        assert store.latest_snapshot("other") is None
        assert replay(store, BALANCES, to_seq=2) == (Balances({"a": 1}, 1), 2)

    def test_first_seq_since_finds_the_first_record_at_or_after_an_instant(
        self, store: EventStore
    ) -> None:
        for t in (10.0, 20.0, 20.0, 35.0):
            store.append_events("a", [deposit("a", 1)], server_time=t, monotonic=t)
        assert store.first_seq_since(0.0) == 1
        assert store.first_seq_since(20.0) == 2
        assert store.first_seq_since(20.5) == 4
        assert store.first_seq_since(36.0) == 5  # none: the next record to come

    def test_a_replay_restricted_to_its_types_equals_the_whole_fold(
        self, store: EventStore
    ) -> None:
        """A projection that names the types it changes state on reads only those records (the
        gateway's start on a long log); the other records leave its state as it is."""
        store.append_events("a", [deposit("a", 1)], server_time=1.0, monotonic=1.0)
        store.append_events(
            "poll", [Polled(resource="/x", at_s=1.5)], server_time=1.5, monotonic=1.5
        )
        store.append_events(
            "a", [Withdrawn(account="a", amount=5), deposit("b", 2)], server_time=2.0, monotonic=2.0
        )
        store.append_events(
            "poll", [Polled(resource="/x", at_s=3.0)], server_time=3.0, monotonic=3.0
        )
        typed = Projection(
            name="balances",
            initial=Balances(),
            evolve=evolve,
            state_type=Balances,
            types=(Deposited, Withdrawn),
        )
        whole = (Balances({"a": -4, "b": 2}, 3), 5)
        assert replay(store, typed) == replay(store, BALANCES) == whole
        assert replay(store, typed, to_seq=2) == (Balances({"a": 1}, 1), 2)

    # Each backend subclass runs this property with its own store: differing executors by design.
    @settings(max_examples=25, suppress_health_check=[HealthCheck.differing_executors])
    @given(
        operations=st.lists(
            st.tuples(st.sampled_from("abc"), st.integers(-50, 50), st.booleans()), max_size=40
        ),
        snapshot_points=st.sets(st.integers(0, 40), max_size=4),
    )
    def test_snapshot_plus_tail_equals_full_fold(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        operations: list[tuple[str, int, bool]],
        snapshot_points: set[int],
    ) -> None:
        store = self.make_store(tmp_path_factory.mktemp("prop"))
        try:
            events: list[Deposited | Withdrawn] = []
            for index, (account, amount, deposit_it) in enumerate(operations):
                if index in snapshot_points:
                    stream, snap = snapshot_of(
                        BALANCES, replay(store, BALANCES)[0], store.head().seq
                    )
                    store.append_events(stream, [snap], server_time=float(index), monotonic=0.0)
                event = (
                    deposit(account, amount)
                    if deposit_it
                    else Withdrawn(account=account, amount=amount)
                )
                events.append(event)
                store.append_events(account, [event], server_time=float(index), monotonic=0.0)
            full = fold(events, evolve, Balances())
            assert replay(store, BALANCES)[0] == full
            assert fold((r.event for r in store.read()), evolve, Balances()) == full
            assert store.verify({"balances": BALANCES}).ok
        finally:
            store.close()


class TestMemoryStore(StoreContract):
    def make_store(self, tmp_path: Path) -> EventStore:
        return MemoryEventStore(TEST_CATALOGUE)


class TestSqliteStore(StoreContract):
    def make_store(self, tmp_path: Path) -> EventStore:
        return SqliteEventStore(tmp_path / "log.sep2gw", TEST_CATALOGUE)
