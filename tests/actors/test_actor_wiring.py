"""The actors talk only by messages (DESIGN.md "Actors": msgspec values over bounded memory streams
or latest-value mailboxes; issue 17). An actor's constructor is its whole wiring, so this pins it: it
takes message ports (memory-object streams, :class:`actors.mailbox.Latest`), the shared services
(the link, the log, the clock, the log store, the random source, the DER driver) and plain values.
A callable is how one actor used to reach into another (the controls actor called the registration
actor's ``comms_restored``/``control_took_effect``; registration and controls read the hardware
actor's ``snapshot()`` through closures): none is accepted, nor another actor."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import msgspec
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.clock import Clock
from actors.controls import ControlsActor
from actors.der_status import DerStatusActor
from actors.drivers.base import DerDriver
from actors.hardware import HardwareActor
from actors.https import HttpsClient
from actors.link import Link
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.mirror import DerMirrorActor, MirrorActor
from actors.pricing import PricingActor
from actors.registration import RegistrationActor
from actors.responder import ResponderActor
from actors.rng import RandomSource
from actors.shared_gets import SharedDecodes
from events.store import EventStore

ACTORS: typing.Final = (
    ControlsActor,
    RegistrationActor,
    HardwareActor,
    MirrorActor,
    DerMirrorActor,
    DerStatusActor,
    ResponderActor,
    # The link is a service the others share, and an actor of its own kind: its changes of
    # reachability go to the controls actor as LinkState messages, not through a callback.
    Link,
    PricingActor,
)
#: Where messages go in and out.
PORTS: typing.Final = (MemoryObjectSendStream, MemoryObjectReceiveStream, Latest)
#: What every actor may share: none of them is another actor's state.
#: SharedDecodes: a fleet's table of decoded documents (a passive value store, like the log's).
SERVICES: typing.Final = (
    Link,
    HttpsClient,
    LogWriter,
    Clock,
    EventStore,
    RandomSource,
    DerDriver,
    SharedDecodes,
)
PLAIN: typing.Final = (str, int, float, bool)


def _members(annotation: Any) -> list[Any]:
    """The types an annotation admits, ``None`` left out (an optional port is still a port)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [] if annotation is type(None) else [annotation]


def _is_message_or_service(member: Any) -> bool:
    kind = typing.get_origin(member) or member
    if kind is tuple:  # a tuple of configuration values (the CSIP-AUS versions) is one too
        args = [a for a in typing.get_args(member) if a is not Ellipsis]
        return bool(args) and all(_is_message_or_service(a) for a in args)
    if kind is dict:  # ports by name (a site's DER, issue 19): each value is one
        key, value = typing.get_args(member)
        return key is str and _is_message_or_service(value)
    if not isinstance(kind, type):
        return False
    if issubclass(kind, PORTS + SERVICES + PLAIN):
        return True
    # A configuration value: immutable data, no behaviour that reaches anywhere.
    if issubclass(kind, msgspec.Struct):
        return bool(kind.__struct_config__.frozen)
    return dataclasses.is_dataclass(kind) and bool(kind.__dataclass_params__.frozen)


@pytest.mark.parametrize("actor", ACTORS, ids=lambda a: a.__name__)
def test_actors_talk_only_by_messages_their_constructors_take_ports_and_services(
    actor: type,
) -> None:
    """DESIGN.md "Actors" (issue 17): no callable, no other actor — messages only."""
    hints = typing.get_type_hints(actor.__init__)
    hints.pop("return", None)
    assert hints, f"{actor.__name__}.__init__ has no annotated parameters"
    wrong = {
        name: annotation
        for name, annotation in hints.items()
        if not all(_is_message_or_service(m) for m in _members(annotation))
    }
    assert not wrong, (
        f"{actor.__name__} takes {wrong}: an actor is wired with message streams, mailboxes, "
        "the link, the log, the clock, the store, the random source, the driver and plain "
        "values — never a callable into another actor or another actor itself"
    )


def test_the_wiring_check_refuses_a_callable_and_an_actor() -> None:
    """The check above is not vacuous: a callback or an actor parameter is refused."""

    class Reaching:
        def __init__(
            self,
            *,
            link: Link,
            peer: ControlsActor,
            on_change: typing.Callable[[], None] | None = None,
        ) -> None: ...

    hints = typing.get_type_hints(Reaching.__init__, localns={"ControlsActor": ControlsActor})
    assert _is_message_or_service(hints["link"])
    assert not _is_message_or_service(hints["peer"])
    assert not all(_is_message_or_service(m) for m in _members(hints["on_change"]))
