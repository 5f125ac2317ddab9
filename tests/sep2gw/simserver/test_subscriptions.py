"""The simulated server's subscription family, pure (IEEE 2030.5 §5.4): who may subscribe, what a
Subscription must say, and the Notifications each server-side change makes."""

from __future__ import annotations

import msgspec
import pytest
from lxml import etree

from sep2gw.simserver import UtilityState, parse_scenario
from sep2gw.simserver.families.subscriptions import OutgoingNotification, draw
from transport.sep2 import decode, decode_any, encode
from transport.sep2 import resources as r

from .helpers import LFDI, START, end_device, registered, xsd_csipaus

NOTIFY = "https://gateway.sim/notify"

BASE = """
[server]
{server}

[[programs]]
id = "net"
primacy = 10
default = {{ opModExpLimW = 5000 }}

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "net"
start_s = 600
duration_s = 300
modes = {{ opModExpLimW = 1500 }}
"""

AGGREGATOR = f'subscriptions = "aggregator"\naggregators = ["{LFDI}"]'


def state(server: str = AGGREGATOR, extra: str = "") -> UtilityState:
    return registered(BASE.format(server=server) + extra)


def get(s: UtilityState, path: str, now: float = START) -> r.Resource:
    reply = s.handle("GET", path, b"", LFDI, now)
    assert reply.status == 200, reply.reason
    result: r.Resource = decode_any(reply.body)  # type: ignore[assignment]
    return result


def subscription(resource: str = "/derp/1/derc", **changes: object) -> r.Subscription:
    fields: dict[str, object] = {
        "subscribedResource": resource,
        "encoding": 0,
        "level": "+S1",
        "limit": 10,
        "notificationURI": NOTIFY,
    }
    fields.update(changes)
    return r.Subscription(**fields)  # type: ignore[arg-type]


def subscribe(s: UtilityState, sub: r.Subscription, now: float = START) -> tuple[int, str]:
    reply = s.handle("POST", "/edev/1/sub", encode(sub), LFDI, now)
    return reply.status, reply.reason or (reply.location or "")


def act(s: UtilityState, toml: str, at_s: float) -> list[OutgoingNotification]:
    """Apply the one action in ``toml`` at ``at_s`` and take what it made."""
    scenario = parse_scenario(BASE.format(server=AGGREGATOR) + toml)
    s.apply(scenario.actions[-1], START + at_s)
    return s.take_outbox()


def valid(body: bytes) -> r.Notification:
    """Every Notification the server sends validates against the published schema."""
    schema = xsd_csipaus()
    assert schema.validate(etree.fromstring(body)), schema.error_log
    return decode(body, r.Notification)


# ------------------------------------------------------------------------------------ access


def test_a_device_certificate_may_not_subscribe_by_default_as_on_the_public_servers() -> None:
    s = state(server="")
    edev = get(s, "/edev/1")
    assert isinstance(edev, r.EndDevice)
    assert edev.SubscriptionListLink is None and edev.subscribable == 0
    status, reason = subscribe(s, subscription())
    assert status == 403
    assert "only aggregator certificates may subscribe" in reason
    assert [(a.what, a.status) for a in s.subscription_audit] == [("refused", 403)]


def test_subscriptions_none_offers_nothing_and_refuses_everyone() -> None:
    s = state(server=f'subscriptions = "none"\naggregators = ["{LFDI}"]')
    edev = get(s, "/edev/1")
    assert isinstance(edev, r.EndDevice) and edev.SubscriptionListLink is None
    status, reason = subscribe(s, subscription())
    assert status == 403 and "does not offer subscriptions" in reason


def test_an_aggregator_sees_the_link_and_subscribable_resources_say_so() -> None:
    s = state()
    edev = get(s, "/edev/1")
    assert isinstance(edev, r.EndDevice)
    assert edev.SubscriptionListLink == r.SubscriptionListLink(href="/edev/1/sub")
    for path in ("/edev/1", "/edev/1/fsa", "/edev/1/fsa/1/derp", "/derp/1/dderc", "/derp/1/derc"):
        assert getattr(get(s, path), "subscribable", None) == 1, path
    program_list = get(s, "/edev/1/fsa/1/derp")
    assert isinstance(program_list, r.DERProgramList)
    assert program_list.DERProgram[0].subscribable == 1
    assert getattr(get(s, "/derp/1/actderc"), "subscribable", None) == 0  # changes with time only


def test_subscriptions_all_lets_a_device_certificate_subscribe() -> None:
    s = state(server='subscriptions = "all"')
    assert subscribe(s, subscription()) == (201, "/edev/1/sub/1")


# ------------------------------------------------------------------------------- the resource


def test_subscribe_read_list_and_delete() -> None:
    s = state()
    assert subscribe(s, subscription()) == (201, "/edev/1/sub/1")
    assert subscribe(s, subscription("/edev/1")) == (201, "/edev/1/sub/2")
    one = get(s, "/edev/1/sub/1")
    assert isinstance(one, r.Subscription)
    assert (one.subscribedResource, one.limit, one.notificationURI) == ("/derp/1/derc", 10, NOTIFY)
    page = get(s, "/edev/1/sub?s=1&l=1")
    assert isinstance(page, r.SubscriptionList)
    assert (page.all, page.results, page.Subscription[0].href) == (2, 1, "/edev/1/sub/2")
    assert s.handle("DELETE", "/edev/1/sub/1", b"", LFDI, START).status == 204
    assert s.handle("GET", "/edev/1/sub/1", b"", LFDI, START).status == 404
    assert s.handle("DELETE", "/edev/1/sub/1", b"", LFDI, START).status == 404
    assert [a.what for a in s.subscription_audit] == ["accepted", "accepted", "deleted", "refused"]


def test_the_same_subscription_posted_again_is_the_same_resource() -> None:
    s = state()
    assert subscribe(s, subscription()) == (201, "/edev/1/sub/1")
    assert subscribe(s, subscription()) == (201, "/edev/1/sub/1")
    assert len(s.subscriptions) == 1
    assert [a.what for a in s.subscription_audit] == ["accepted", "repeated"]


def test_an_absolute_subscribed_resource_uri_names_its_path() -> None:
    s = state()
    assert subscribe(s, subscription("https://utility.sim/derp/1/dderc"))[0] == 201
    assert s.subscriptions[1].path == "/derp/1/dderc"


@pytest.mark.parametrize(
    ("sub", "says"),
    [
        (subscription("/edev/2"), "subscribedResource: /edev/2 is not a resource of EndDevice 1"),
        (subscription("/edev/1/der"), "not a resource this server lets clients subscribe to"),
        (subscription("/derp/1/actderc"), "not a resource this server lets clients subscribe to"),
        (subscription("/derp/9/derc"), "subscribedResource: no resource at /derp/9/derc"),
        (subscription("derp/1/derc"), "is neither a path nor an https URI"),
        (subscription("http://utility.sim/edev/1"), "is neither a path nor an https URI"),
        (
            subscription(
                Condition=r.Condition(attributeIdentifier=0, lowerThreshold=0, upperThreshold=1)
            ),
            "/Subscription/Condition: conditional subscriptions are not supported",
        ),
        (subscription(encoding=1), "/Subscription/encoding: 1 is not served"),
        (subscription(level="+S2"), "/Subscription/level: '+S2' is not served"),
        (subscription(limit=101), "/Subscription/limit: 101 is more than this server sends (100)"),
        (subscription(notificationURI="http://gateway.sim/n"), "notificationURI"),
        (subscription(notificationURI="/notify"), "notificationURI"),
        (subscription(notificationURI="https://gateway.sim/n#x"), "notificationURI"),
        (subscription(notificationURI="https://me@gateway.sim/n"), "notificationURI"),
        (subscription(notificationURI="https://gateway.sim:99999/n"), "notificationURI"),
    ],
)
def test_a_subscription_the_server_cannot_honour_is_refused_naming_why(
    sub: r.Subscription, says: str
) -> None:
    s = state()
    status, reason = subscribe(s, sub)
    assert status == 400
    assert says in reason
    assert s.subscriptions == {}
    assert s.subscription_audit[-1].what == "refused" and says in s.subscription_audit[-1].detail


def test_a_resource_of_another_end_device_is_refused() -> None:
    s = state()
    other = "B" * 40
    body = encode(end_device(other))
    scenario = parse_scenario(BASE.format(server='subscriptions = "all"'))
    s.scenario = scenario
    assert s.handle("POST", "/edev", body, other, START).status == 201
    reply = s.handle("POST", "/edev/2/sub", encode(subscription("/edev/1")), other, START)
    assert reply.status == 400 and "is not a resource of EndDevice 2" in reply.reason


def test_a_device_holds_a_bounded_number_of_subscriptions() -> None:
    s = state(server=AGGREGATOR + "\nsubscriptions_per_device = 2")
    assert subscribe(s, subscription("/edev/1"))[0] == 201
    assert subscribe(s, subscription("/edev/1/fsa"))[0] == 201
    status, reason = subscribe(s, subscription("/derp/1/derc"))
    assert status == 400 and "already holds 2 subscriptions (at most 2)" in reason


def test_a_body_that_is_not_a_subscription_is_refused() -> None:
    s = state()
    reply = s.handle("POST", "/edev/1/sub", encode(end_device()), LFDI, START)
    assert reply.status == 400
    assert s.subscription_audit[-1].what == "refused"


# ------------------------------------------------------------------------------ notifications

CREATE = """
[[actions]]
at_s = 120
kind = "create_control"
mrid = "B1"
program = "net"
start_s = 300
duration_s = 60
modes = { opModExpLimW = 0 }
"""


def test_a_created_control_notifies_the_control_list_within_its_limit() -> None:
    s = state()
    assert subscribe(s, subscription(limit=1))[0] == 201
    [made] = act(s, CREATE, 120)
    assert (made.uri, made.status, made.copies, made.not_before) == (NOTIFY, 0, 1, START + 120)
    notification = valid(made.body)
    assert notification.subscribedResource == "/derp/1/derc"
    assert notification.subscriptionURI == "https://utility.sim/edev/1/sub/1"
    assert notification.status == 0
    listed = notification.Resource
    assert isinstance(listed, r.DERControlList)
    # Two controls, list order (start first): the new one starts first; limit 1 sends it alone.
    assert (listed.all, listed.results) == (2, 1)
    assert int(listed.DERControl[0].mRID) == 0xB1
    assert b'xsi:type="DERControlList"' in made.body


def test_limit_zero_on_a_list_sends_results_zero() -> None:
    s = state()
    assert subscribe(s, subscription(limit=0))[0] == 201
    [made] = act(s, CREATE, 120)
    listed = valid(made.body).Resource
    assert isinstance(listed, r.DERControlList)
    assert (listed.all, listed.results, listed.DERControl) == (2, 0, ())


def test_a_changed_default_is_sent_inline_with_its_type_and_limit_zero_sends_none() -> None:
    s = state()
    assert subscribe(s, subscription("/derp/1/dderc", limit=1))[0] == 201
    assert subscribe(s, subscription("/derp/1/dderc", limit=0))[0] == 201
    change = """
[[actions]]
at_s = 60
kind = "change_default"
program = "net"
modes = { opModExpLimW = 2500 }
"""
    inline, bare = act(s, change, 60)
    default = valid(inline.body).Resource
    assert isinstance(default, r.DefaultDERControl)
    assert default.DERControlBase.opModExpLimW == r.ActivePower(value=2500, multiplier=0)
    assert b'xsi:type="DefaultDERControl"' in inline.body
    assert valid(bare.body).Resource is None


def test_cancelling_a_control_notifies_the_control_and_its_list() -> None:
    s = state()
    assert subscribe(s, subscription("/derp/1/derc/1", limit=1))[0] == 201
    assert subscribe(s, subscription("/derp/1/derc"))[0] == 201
    cancel = '\n[[actions]]\nat_s = 30\nkind = "cancel_control"\nmrid = "A1"\n'
    made = act(s, cancel, 30)
    assert [m.subscription for m in made] == [1, 2]
    control = valid(made[0].body).Resource
    assert isinstance(control, r.DERControl) and control.EventStatus.currentStatus == 2


def test_a_change_elsewhere_or_time_passing_notifies_nobody() -> None:
    s = state()
    assert subscribe(s, subscription())[0] == 201
    post_rate = '\n[[actions]]\nat_s = 700\nkind = "set_post_rate"\nseconds = 300\n'
    # A1 became active at +600 s: its status changed with time, not by the server's hand.
    assert act(s, post_rate, 700) == []


def test_the_end_device_notifies_a_changed_post_rate() -> None:
    s = state()
    assert subscribe(s, subscription("/edev/1", limit=1))[0] == 201
    post_rate = '\n[[actions]]\nat_s = 60\nkind = "set_post_rate"\nseconds = 300\n'
    [made] = act(s, post_rate, 60)
    edev = valid(made.body).Resource
    assert isinstance(edev, r.EndDevice) and edev.postRate == 300


def test_a_resource_that_is_gone_ends_its_subscription_with_status_4() -> None:
    s = state()
    assert subscribe(s, subscription("/derp/1/dderc"))[0] == 201
    remove = '\n[[actions]]\nat_s = 60\nkind = "change_default"\nprogram = "net"\nmodes = {}\n'
    [made] = act(s, remove, 60)
    assert valid(made.body).status == 4 and valid(made.body).Resource is None
    assert s.subscriptions == {}


def test_the_server_cancels_subscriptions_with_status_1() -> None:
    s = state()
    assert subscribe(s, subscription("/derp/1/dderc"))[0] == 201
    assert subscribe(s, subscription("/edev/1"))[0] == 201
    cancel = '\n[[actions]]\nat_s = 60\nkind = "cancel_subscriptions"\nresources = ["/derp"]\n'
    made = act(s, cancel, 60)
    assert [(m.subscription, valid(m.body).status) for m in made] == [(1, 1)]
    assert s.handle("GET", "/edev/1/sub/1", b"", LFDI, START + 61).status == 404
    assert list(s.subscriptions) == [2]


def test_a_restarted_server_forgets_subscriptions_without_telling_anyone() -> None:
    s = state()
    assert subscribe(s, subscription())[0] == 201
    assert act(s, '\n[[actions]]\nat_s = 60\nkind = "forget_subscriptions"\n', 60) == []
    assert s.handle("GET", "/edev/1/sub/1", b"", LFDI, START + 61).status == 404
    assert get(s, "/edev/1/sub").all == 0  # type: ignore[attr-defined]
    # A new subscription never reuses a forgotten href.
    assert subscribe(s, subscription(), START + 62) == (201, "/edev/1/sub/2")
    assert [a.what for a in s.subscription_audit] == ["accepted", "forgotten", "accepted"]


def test_notifications_are_sent_in_the_namespace_the_server_serves() -> None:
    storage = "https://csipaus.org/ns/v1.3-beta/storage"
    s = registered(BASE.format(server=AGGREGATOR) + f'\n[quirks]\ncsipaus_ns = "{storage}"\n')
    assert subscribe(s, subscription())[0] == 201
    scenario = parse_scenario(
        BASE.format(server=AGGREGATOR) + CREATE + f'\n[quirks]\ncsipaus_ns = "{storage}"\n'
    )
    s.apply(scenario.actions[-1], START + 120)
    [made] = s.take_outbox()
    from sep2gw.simserver.validation import request_validator

    assert request_validator(storage).check(made.body) is None
    assert storage.encode() in made.body


# ------------------------------------------------------------------------------------ faults


def _faulted(seed: int, fault: str, count: int = 40) -> list[int]:
    s = state(extra=fault)
    s.notification_seed = seed
    assert subscribe(s, subscription("/derp/1/dderc"))[0] == 201
    scenario = parse_scenario(BASE.format(server=AGGREGATOR) + fault)
    s.apply(scenario.actions[-1], START + 10)
    copies = []
    for i in range(count):
        change = parse_scenario(
            BASE.format(server=AGGREGATOR)
            + f'[[actions]]\nat_s = {20 + i}\nkind = "change_default"\nprogram = "net"\n'
            f"modes = {{ opModExpLimW = {1000 + i} }}\n"
        )
        s.apply(change.actions[-1], START + 20 + i)
        copies += [m.copies for m in s.take_outbox()]
    return copies


LOSE_ALL = '[[actions]]\nat_s = 10\nkind = "lose_notifications"\nduration_s = 100\n'
LOSE_HALF = LOSE_ALL + "probability = 0.5\n"
DUPLICATE_ALL = '[[actions]]\nat_s = 10\nkind = "duplicate_notifications"\nduration_s = 100\n'
DELAY = '[[actions]]\nat_s = 10\nkind = "delay_notifications"\nduration_s = 100\ndelay_s = 30\n'


def test_lose_all_drops_every_notification_in_the_window_and_no_later() -> None:
    assert _faulted(1, LOSE_ALL, count=5) == [0] * 5
    s = state(extra=LOSE_ALL)
    assert subscribe(s, subscription("/derp/1/dderc"))[0] == 201
    s.apply(parse_scenario(BASE.format(server=AGGREGATOR) + LOSE_ALL).actions[-1], START + 10)
    after = parse_scenario(
        BASE.format(server=AGGREGATOR)
        + '[[actions]]\nat_s = 110\nkind = "change_default"\nprogram = "net"\nmodes = { opModExpLimW = 1 }\n'
    )
    s.apply(after.actions[-1], START + 110)  # the window is [10, 110): over
    assert [m.copies for m in s.take_outbox()] == [1]
    assert [a.what for a in s.subscription_audit if a.what != "accepted"] == ["made"]


def test_duplicate_all_sends_each_twice() -> None:
    assert _faulted(1, DUPLICATE_ALL, count=5) == [2] * 5


def test_delay_holds_each_notification() -> None:
    s = state(extra=DELAY)
    assert subscribe(s, subscription("/derp/1/dderc"))[0] == 201
    s.apply(parse_scenario(BASE.format(server=AGGREGATOR) + DELAY).actions[-1], START + 10)
    s.apply(
        parse_scenario(
            BASE.format(server=AGGREGATOR)
            + '[[actions]]\nat_s = 20\nkind = "change_default"\nprogram = "net"\nmodes = { opModExpLimW = 1 }\n'
        ).actions[-1],
        START + 20,
    )
    [made] = s.take_outbox()
    assert (made.made_at, made.not_before) == (START + 20, START + 50)


def test_a_probabilistic_loss_is_the_same_for_the_same_seed_and_differs_across_seeds() -> None:
    first = _faulted(7, LOSE_HALF)
    assert first == _faulted(7, LOSE_HALF)
    assert 8 < first.count(0) < 32  # about half, from a fair draw
    assert first != _faulted(8, LOSE_HALF)


def test_the_fault_draw_is_a_pure_function_of_seed_number_and_kind() -> None:
    assert draw(3, 5, "lose") == draw(3, 5, "lose")
    assert len({draw(3, 5, "lose"), draw(3, 5, "duplicate"), draw(4, 5, "lose")}) == 3
    assert all(0 <= draw(1, n, "lose") < 1 for n in range(100))


def test_scenario_checks_name_bad_notification_settings() -> None:
    from sep2gw.simserver import ScenarioError

    bad = (
        '[server]\naggregators = ["XYZ"]\nsubscription_limit_max = -1\n'
        'subscriptions_per_device = 0\nbase_url = "http://x"\n'
        '[[actions]]\nat_s = 0\nkind = "lose_notifications"\nduration_s = 0\nprobability = 2\n'
        '[[actions]]\nat_s = 0\nkind = "delay_notifications"\nduration_s = 5\ndelay_s = 0\n'
        '[[actions]]\nat_s = 0\nkind = "cancel_subscriptions"\nresources = ["derp"]\n'
    )
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(bad)
    text = str(caught.value)
    for key in (
        "server.aggregators[0]",
        "server.subscription_limit_max",
        "server.subscriptions_per_device",
        "server.base_url",
        "actions[0].duration_s",
        "actions[0].probability",
        "actions[1].delay_s",
        "actions[2].resources[0]",
    ):
        assert key in text, key


def test_the_subscription_round_trips_through_msgspec_for_the_request_record() -> None:
    s = state()
    reply = s.handle("POST", "/edev/1/sub", encode(subscription()), LFDI, START)
    assert isinstance(reply.parsed, r.Subscription)
    assert msgspec.structs.asdict(reply.parsed)["limit"] == 10


def test_as_envoy_a_device_certificate_can_be_shown_the_link_and_still_refused() -> None:
    s = state(server='subscription_link = "everyone"')
    edev = get(s, "/edev/1")
    assert isinstance(edev, r.EndDevice)
    assert edev.SubscriptionListLink == r.SubscriptionListLink(href="/edev/1/sub")
    assert edev.subscribable == 1 and getattr(get(s, "/derp/1/derc"), "subscribable", None) == 1
    status, reason = subscribe(s, subscription())
    assert status == 403 and "only aggregator certificates may subscribe" in reason
    assert s.handle("GET", "/edev/1/sub", b"", LFDI, START).status == 403


def test_v13_notifications_parse_with_envoy_schemas_independent_models() -> None:
    """v1.3 has no published XSD: its notification bodies are read back by envoy-schema (the
    utility server envoy's own pydantic-xml models, which read v1.3's extension namespace), an
    implementation independent of our codec."""
    from envoy_schema.server.schema.sep2.pub_sub import Notification as EnvoyNotification

    quirks = '\n[quirks]\ncsipaus_ns = "https://csipaus.org/ns/v1.3"\n'
    s = registered(BASE.format(server=AGGREGATOR) + quirks)
    assert subscribe(s, subscription(limit=2))[0] == 201
    scenario = parse_scenario(BASE.format(server=AGGREGATOR) + CREATE + quirks)
    s.apply(scenario.actions[-1], START + 120)
    [made] = s.take_outbox()
    parsed = EnvoyNotification.from_xml(made.body)
    assert (parsed.subscribedResource, parsed.status) == ("/derp/1/derc", 0)
    assert parsed.subscriptionURI == "https://utility.sim/edev/1/sub/1"
    listed = parsed.resource
    assert listed is not None and (listed.all_, listed.results) == (2, 2)
    assert [(int(c.mRID, 16), c.DERControlBase_.opModExpLimW.value) for c in listed.DERControl] == [
        (0xB1, 0),
        (0xA1, 1500),
    ]
