"""What the simulated utility's subscription audit shows, judged against ``[expect.notifications]``
(issue 19 point 3): pure, over the state's :class:`~sep2gw.simserver.families.subscriptions.SubscriptionAudit`
entries, the notifier's :class:`~sep2gw.simserver.notifier.NotificationAttempt` s and the actions
the server applied. Each finding is one sentence naming what fell short."""

from __future__ import annotations

from collections.abc import Sequence

from sep2gw.simserver.expectations import NotificationsExpect
from sep2gw.simserver.families.subscriptions import SubscriptionAudit
from sep2gw.simserver.notifier import NotificationAttempt
from sep2gw.simserver.scenario import Action, CancelSubscriptions, ForgetSubscriptions

__all__ = ["NotificationCounts", "notification_findings"]


class NotificationCounts:
    """The audit in numbers: subscriptions accepted/refused, notifications made, delivered (each
    copy), dropped, duplicated."""

    def __init__(
        self, audit: Sequence[SubscriptionAudit], attempts: Sequence[NotificationAttempt]
    ) -> None:
        self.accepted = sum(1 for a in audit if a.what == "accepted")
        self.refused = sum(1 for a in audit if a.what == "refused")
        self.made = sum(1 for a in audit if a.what in ("made", "dropped", "duplicated"))
        self.dropped = sum(1 for a in audit if a.what == "dropped")
        self.duplicated = sum(1 for a in audit if a.what == "duplicated")
        self.delivered = sum(1 for a in attempts if a.outcome == "delivered")
        self.gave_up = sum(1 for a in attempts if a.outcome in ("gave_up", "refused"))


def notification_findings(
    spec: NotificationsExpect,
    audit: Sequence[SubscriptionAudit],
    attempts: Sequence[NotificationAttempt],
    applied: Sequence[tuple[float, Action]],
    *,
    start: float,
    end: float,
) -> list[str]:
    """Every way the audit falls short of ``spec`` (empty: it meets it). ``start``/``end``: the
    run's first and last server instants (a restart too near the end to re-subscribe in is not
    judged)."""
    counts = NotificationCounts(audit, attempts)
    findings: list[str] = []
    for name, what, got in (
        ("accepted", "subscriptions accepted", counts.accepted),
        ("delivered", "notifications delivered", counts.delivered),
        ("dropped", "notifications dropped", counts.dropped),
        ("duplicated", "notifications duplicated", counts.duplicated),
    ):
        wanted: int = getattr(spec, f"min_{name}")
        if got < wanted:
            findings.append(f"{got} {what}, expected at least {wanted}")
    if spec.max_refused is not None and counts.refused > spec.max_refused:
        reasons = sorted({a.detail for a in audit if a.what == "refused"})
        findings.append(
            f"{counts.refused} subscription requests refused, at most {spec.max_refused} "
            f"expected: {'; '.join(reasons)}"
        )
    if spec.resubscribed_within_s is not None:
        within = spec.resubscribed_within_s
        accepted = [a.at for a in audit if a.what == "accepted"]
        for at, action in applied:
            if not isinstance(action, ForgetSubscriptions | CancelSubscriptions):
                continue
            if at + within > end:
                continue
            if not any(at <= t <= at + within for t in accepted):
                findings.append(
                    f"no subscription accepted within {within:g} s of the "
                    f"{type(action).__name__} at +{at - start:g} s"
                )
    return findings
