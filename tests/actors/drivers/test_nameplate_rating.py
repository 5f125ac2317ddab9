"""``Nameplate.rating`` is asked every control period by each site's closed loop: remembered per
nameplate, so sites sharing a process (a fleet, issue 19) do not recompute it for each other."""

from __future__ import annotations

import pytest

from actors.drivers.base import Nameplate


def test_issue19_each_sites_nameplate_keeps_its_rating(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[Nameplate] = []
    compute = Nameplate._rating

    def counting(self: Nameplate) -> object:
        computed.append(self)
        return compute(self)

    monkeypatch.setattr(Nameplate, "_rating", counting)
    site_a = Nameplate(rated_w=5000.0, max_w=4000.0)
    site_b = Nameplate(rated_w=3000.0, max_w=3000.0)
    for _ in range(3):  # two sites' loops asking in turn, period after period
        assert site_a.rating().max_w == 4000.0
        assert site_b.rating().max_w == 3000.0
    assert computed == [site_a, site_b]
    # An equal nameplate read again is its own object: computed once more, same answer.
    again = Nameplate(rated_w=5000.0, max_w=4000.0)
    assert again.rating() == site_a.rating()
    assert computed[-1] is again
