"""The dispute report's chart: one SVG per window of the log (the whole log, then each day of a
long one), drawn so that no text overlaps other text or leaves the picture at any log length.

From top to bottom: the Responses as dots; the power panel (every commanded mode in W against the
measured site and DER power, with nice tick values and the 0 W line); the state of charge when the
log records it; one lane per mode in force, each stretch of one value from one supplier a band
(labelled only where the label fits inside it; the full story is in the band's tooltip); a lane for
the gateway's runs and comms; the time axis in the site's zone; the legend, wrapped.

Text is laid out with a width model of the pinned font (:func:`text_width`, an upper bound for
DejaVu Sans and Verdana, the widest common sans faces) so layout decisions hold in any browser; the
SVG scales to the page's width (``viewBox``, no fixed size).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from datetime import timedelta, tzinfo
from html import escape
from typing import Final

import msgspec

from events.der_model import Mode
from events.times import utc_datetime, zoned
from sep2gw.forensics.dispute import SiteIdentity, Stretch, value_text
from sep2gw.forensics.model import Forensics
from sep2gw.timeline import short

__all__ = [
    "FONT_FAMILY",
    "FONT_SIZE",
    "Window",
    "nice_ticks",
    "render_chart",
    "text_width",
    "time_ticks",
]

FONT_FAMILY: Final = "DejaVu Sans, Verdana, sans-serif"
FONT_SIZE: Final = 11
W: Final = 1200
LEFT, RIGHT = 140, 24
_MAX_BUCKETS: Final = 1200
_LANE_H, _LANE_GAP = 16, 3
#: Room kept between a label anchored to the chart's edge and the edge: a real font's last glyph may
#: overhang its advance width by a pixel (Chromium measured 0.97 px past 1200 on "11-27 00:00").
_EDGE_MARGIN: Final = 4.0

#: Advance widths in em (upper bounds over DejaVu Sans and Verdana): the layout's font model.
_NARROW: Final = frozenset("il.,:;'| \u2009")
_WIDE: Final = frozenset("mwMW@%")
_MATHS: Final = frozenset("+=<>~#&^")
_SAFETY: Final = 1.08


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """An upper bound of the advance width of ``text`` in user units at font size ``size``."""
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.36
        elif ch in _WIDE:
            em += 1.0
        elif ch in _MATHS:
            em += 0.86
        elif ch.isupper():
            em += 0.78
        else:
            em += 0.64
    return em * size * _SAFETY


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """The span of the log one chart shows, and its heading."""

    start_s: float
    end_s: float
    title: str


def nice_ticks(lo: float, hi: float, most: int = 8) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``[lo, hi]``, 0 among them
    whenever the range spans it, at most ``most`` + 1 of them."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    last = math.ceil(hi / step) * step
    count = round((last - first) / step)
    return [round(first + k * step, 9) + 0.0 for k in range(count + 1)]


_TIME_STEPS: Final = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800,
)  # fmt: skip


def time_ticks(t0: float, t1: float, px_per_s: float, zone: tzinfo) -> list[tuple[float, str]]:
    """Tick instants on round local times (whole minutes, hours…) with their labels, spaced so
    the labels cannot overlap; the date is shown at the first tick and wherever it changes."""
    if utc_datetime(t0) is None or utc_datetime(t1) is None or not t1 > t0:
        # a span no calendar can show (time is total: any int64 a log holds renders): epoch
        # seconds at five even ticks, the layout drops those that would overlap
        return [(t0 + (t1 - t0) * k / 4, f"{t0 + (t1 - t0) * k / 4:.6g} s") for k in range(5)]
    widest = text_width("11-26 00:00:00")
    step = next((s for s in _TIME_STEPS if s * px_per_s >= widest + 12), _TIME_STEPS[-1])
    while (t1 - t0) / step > 60:  # a very long log: whole weeks
        step *= 2
    offset = _offset(t0, zone)
    first = math.ceil((t0 + offset) / step) * step - offset
    ticks: list[tuple[float, str]] = []
    previous_day = ""
    t = first
    while t <= t1 + 1e-6:
        utc = utc_datetime(t)
        local = None if utc is None else zoned(utc, zone)
        if local is None:
            break
        day = f"{local:%m-%d}"
        clock = f"{local:%H:%M:%S}" if step < 60 else f"{local:%H:%M}"
        label = clock if day == previous_day else f"{day} {clock}"
        previous_day = day
        ticks.append((t, label))
        t += step
    return ticks


def _offset(t: float, zone: tzinfo) -> float:
    utc = utc_datetime(t)
    local = None if utc is None else zoned(utc, zone)
    delta = None if local is None else local.utcoffset()
    return (delta or timedelta()).total_seconds()


class _Text:
    """Text boxes placed so far: a label is drawn only when it overlaps none of them."""

    def __init__(self) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []
        self.svg: list[str] = []

    def box(
        self, x: float, y: float, text: str, anchor: str, size: float
    ) -> tuple[float, float, float, float]:
        width = text_width(text, size)
        left = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
        return (left, y - size, left + width, y + size * 0.3)

    def place(
        self,
        x: float,
        y: float,
        text: str,
        *,
        anchor: str = "start",
        size: float = FONT_SIZE,
        cls: str = "",
        inside: tuple[float, float] = (0.0, float(W)),
        force: bool = False,
    ) -> bool:
        """Draw ``text`` unless it would overlap text drawn before or leave ``inside`` (x range);
        at the edges of ``inside`` a centred label is anchored to the edge instead of cut."""
        box = self.box(x, y, text, anchor, size)
        if box[0] < inside[0] and anchor == "middle":
            anchor, x = "start", inside[0]
        elif box[2] > inside[1] and anchor == "middle":
            anchor, x = "end", inside[1]
        box = self.box(x, y, text, anchor, size)
        if box[0] < inside[0] - 0.01 or box[2] > inside[1] + 0.01:
            return False
        if not force and any(_overlap(box, other) for other in self.boxes):
            return False
        self.boxes.append(box)
        klass = f" class='{cls}'" if cls else ""
        size_attr = "" if size == FONT_SIZE else f" font-size='{size:g}'"
        self.svg.append(
            f"<text{klass} x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}'{size_attr}>"
            f"{escape(text)}</text>"
        )
        return True


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


#: How each mode charted in W is drawn in the power panel: (colour, dash, sign, label).
_POWER_LINES: Final[dict[Mode, tuple[str, str, float, str]]] = {
    Mode.EXPORT_LIMIT_W: ("#c00", "", 1.0, "export limit (site, W)"),
    Mode.IMPORT_LIMIT_W: ("#06c", "6 3", -1.0, "import limit (site, as negative W)"),
    Mode.GENERATION_LIMIT_W: ("#e67e00", "", 1.0, "generation limit (DER, W)"),
    Mode.LOAD_LIMIT_W: ("#7b3fb5", "6 3", -1.0, "load limit (DER, as negative W)"),
    Mode.MAX_LIMIT_PCT: ("#e67e00", "2 3", 1.0, "max power limit (DER, % of setMaxW in W)"),
    Mode.TARGET_W: ("#008080", "9 3 2 3", 1.0, "target (DER, W)"),
    Mode.STORAGE_TARGET_W: ("#008080", "3 3", 1.0, "storage target (DER, W)"),
    Mode.FIXED_W_PCT: ("#a0522d", "9 3 2 3", 1.0, "fixed power (DER, % of rating in W)"),
}
_MEASURED: Final = (
    ("site", "#222", "site power measured (+ export)"),
    ("der", "#2a2", "DER power measured (+ discharge)"),
)
_SETPOINT: Final = ("#999", "1 2", "DER setpoint the gateway wrote")
_PALETTE: Final = ("#ffd27f", "#9cc9ff", "#b6e3a0", "#e7b6ee", "#f7b2a4", "#a7e0dc", "#e0d39c")


def _watts(mode: Mode, value: float, identity: SiteIdentity) -> float | None:
    """A mode's value as DER or site W (percent modes by the nameplate), ``None`` when unknown."""
    if mode is Mode.MAX_LIMIT_PCT:
        return None if identity.max_w is None else value / 100.0 * identity.max_w
    if mode is Mode.FIXED_W_PCT:
        base = identity.max_discharge_w if value >= 0 else identity.max_charge_w
        return None if base is None else value / 100.0 * base
    return value


def _buckets(
    t: Sequence[float], v: Sequence[float], lo_i: int, hi_i: int, t0: float, span: float
) -> list[tuple[float, float]]:
    """Min and max of each time bucket, in time order: the shape at any log length."""
    if hi_i - lo_i <= 2 * _MAX_BUCKETS:
        return [(t[i], v[i]) for i in range(lo_i, hi_i) if not math.isnan(v[i])]
    width = span / _MAX_BUCKETS
    points: list[tuple[float, float]] = []
    current = -1
    lo = hi = (0.0, math.nan)
    for i in range(lo_i, hi_i):
        a, b = t[i], v[i]
        if math.isnan(b):
            continue
        k = int((a - t0) / width)
        if k != current:
            if current >= 0:
                points.extend(sorted({lo, hi}))
            current, lo, hi = k, (a, b), (a, b)
        else:
            if b < lo[1]:
                lo = (a, b)
            if b > hi[1]:
                hi = (a, b)
    if current >= 0:
        points.extend(sorted({lo, hi}))
    return points


def _source_words(source: str | None) -> str:
    if source is None:
        return "?"
    kind, _, ident = source.partition(":")
    return f"control {ident}" if kind == "control" else f"default of program {ident}"


def render_chart(
    model: Forensics,
    window: Window,
    *,
    stretches: dict[Mode, list[Stretch]],
    identity: SiteIdentity,
    zone: tzinfo,
    stamp: Callable[[float], str],
    down: Sequence[tuple[float, float]],
) -> str:
    """One chart of ``window`` (see the module docstring)."""
    t0, t1 = window.start_s, window.end_s
    span = max(t1 - t0, 1e-9)
    pw = W - LEFT - RIGHT
    lo_i = bisect.bisect_left(model.sample_t, t0)
    hi_i = bisect.bisect_right(model.sample_t, t1)
    site = _buckets(model.sample_t, model.sample_site, lo_i, hi_i, t0, span)
    der = _buckets(model.sample_t, model.sample_der, lo_i, hi_i, t0, span)
    soc = _buckets(model.sample_t, model.sample_soc, lo_i, hi_i, t0, span)
    visible = {
        mode: [s for s in items if s.end_s > t0 and s.start_s < t1 or s.start_s == t1]
        for mode, items in stretches.items()
    }
    visible = {mode: items for mode, items in visible.items() if items}
    steps: dict[Mode, list[tuple[float, float, float]]] = {}
    for mode, (_, _, sign, _) in _POWER_LINES.items():
        for s in visible.get(mode, ()):
            if isinstance(s.value, int | float) and not isinstance(s.value, bool):
                w = _watts(mode, float(s.value), identity)
                if w is not None:
                    steps.setdefault(mode, []).append(
                        (max(s.start_s, t0), min(s.end_s, t1), sign * w)
                    )
    setpoints = _setpoints(model, t0, t1)
    values = [v for _, v in site] + [v for _, v in der] + [v for _, _, v in setpoints]
    values += [v for items in steps.values() for _, _, v in items]
    lo, hi = (min(values), max(values)) if values else (-1.0, 1.0)
    ticks = nice_ticks(min(lo, 0.0), max(hi, 0.0))
    lo, hi = ticks[0], ticks[-1]

    def x(t: float) -> float:
        return LEFT + (min(max(t, t0), t1) - t0) / span * pw

    top_power, ph = 34, 300

    def y(v: float) -> float:
        return top_power + (hi - v) / (hi - lo) * ph

    texts = _Text()
    body: list[str] = [
        f"<rect x='{LEFT}' y='{top_power}' width='{pw}' height='{ph}' fill='#fff' stroke='#999'/>"
    ]
    for v in ticks:
        stroke = "#555" if v == 0 else "#eee"
        body.append(
            f"<line class='{'zero' if v == 0 else 'grid'}' x1='{LEFT}' x2='{W - RIGHT}' "
            f"y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='{stroke}'/>"
        )
        texts.place(LEFT - 6, y(v) + 4, f"{v:,.0f} W", anchor="end", cls="ytick")
    for mode, line in steps.items():
        colour, dash, _, _ = _POWER_LINES[mode]
        path = "".join(f"M{x(a):.1f},{y(v):.1f}H{x(b):.1f}" for a, b, v in line)
        dash_attr = f" stroke-dasharray='{dash}'" if dash else ""
        body.append(
            f"<path class='cmd cmd-{mode.value}' d='{path}' fill='none' stroke='{colour}' "
            f"stroke-width='2'{dash_attr}/>"
        )
    if setpoints:
        path = "".join(f"M{x(a):.1f},{y(v):.1f}H{x(b):.1f}" for a, b, v in setpoints)
        body.append(
            f"<path class='setpoint' d='{path}' fill='none' stroke='{_SETPOINT[0]}' "
            f"stroke-width='1.5' stroke-dasharray='{_SETPOINT[1]}'/>"
        )
    for name, points, colour in (("site", site, "#222"), ("der", der, "#2a2")):
        if points:
            coords = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
            body.append(
                f"<polyline class='{name}' points='{coords}' fill='none' stroke='{colour}' "
                "stroke-width='1'/>"
            )
    for row in sorted(model.responses.values(), key=lambda r: r.intended_seq):
        at = (
            row.acked_s
            if row.acked_s is not None
            else (row.sent_s[-1] if row.sent_s else row.intended_s)
        )
        if not t0 <= at <= t1:
            continue
        fill = "#2a2" if row.acked_s is not None else "#c00"
        body.append(
            f"<circle class='response' cx='{x(at):.1f}' cy='{top_power - 12}' r='4' fill='{fill}'>"
            f"<title>Response {int(row.status)} for {escape(row.mrid)}: {escape(row.outcome)} "
            f"{escape(stamp(at))}</title></circle>"
        )
    texts.place(LEFT - 6, top_power - 8, "Responses", anchor="end", size=10, cls="lane-name")
    cursor = top_power + ph
    if soc:
        top_soc, sh = cursor + 14, 80

        def ys(v: float) -> float:
            return top_soc + (100.0 - v) / 100.0 * sh

        body.append(
            f"<rect x='{LEFT}' y='{top_soc}' width='{pw}' height='{sh}' fill='#fff' stroke='#999'/>"
        )
        for v in (0.0, 50.0, 100.0):
            body.append(
                f"<line x1='{LEFT}' x2='{W - RIGHT}' y1='{ys(v):.1f}' y2='{ys(v):.1f}' stroke='#eee'/>"
            )
            texts.place(LEFT - 6, ys(v) + 4, f"{v:.0f} %", anchor="end", cls="ytick")
        for bound in (identity.soc_min_pct, identity.soc_max_pct):
            if bound is not None and 0 < bound < 100:
                body.append(
                    f"<line class='soc-bound' x1='{LEFT}' x2='{W - RIGHT}' y1='{ys(bound):.1f}' "
                    f"y2='{ys(bound):.1f}' stroke='#b58900' stroke-dasharray='4 3'/>"
                )
        coords = " ".join(f"{x(a):.1f},{ys(b):.1f}" for a, b in soc)
        body.append(
            f"<polyline class='soc' points='{coords}' fill='none' stroke='#b58900' stroke-width='1.5'/>"
        )
        texts.place(LEFT - 52, top_soc + sh / 2 + 4, "SoC", anchor="end", size=10, cls="lane-name")
        cursor = top_soc + sh
    cursor += 12
    palette: dict[str, str] = {}
    for mode, lane in visible.items():
        top = cursor
        texts.place(LEFT - 6, top + _LANE_H - 4, mode.value, anchor="end", size=10, cls="lane-name")
        body.append(
            f"<rect x='{LEFT}' y='{top}' width='{pw}' height='{_LANE_H}' fill='#fafafa' stroke='#ddd'/>"
        )
        for s in lane:
            xa, xb = x(s.start_s), x(s.end_s)
            fill = _band_colour(mode, s, palette)
            value = value_text(mode, s.value)
            who = _source_words(s.source)
            body.append(
                f"<rect class='band' data-mode='{mode.value}' data-source='{escape(s.source or '?')}' "
                f"x='{xa:.1f}' y='{top}' width='{max(xb - xa, 1):.1f}' height='{_LANE_H}' "
                f"fill='{fill}' stroke='#fff' stroke-width='0.5'><title>{escape(mode.value)} = "
                f"{escape(value)} from {escape(who)}, {escape(stamp(s.start_s))} .. "
                f"{escape(stamp(s.end_s))}</title></rect>"
            )
            ident = (
                "default"
                if (s.source or "").startswith("default:")
                else short((s.source or "?").partition(":")[2])
            )
            for label in (f"{ident} {value}", value, ident):
                if texts.place(
                    xa + 3,
                    top + _LANE_H - 4,
                    label,
                    size=10,
                    cls="band-label",
                    inside=(xa + 1, xb - 1),
                ):
                    break
        cursor += _LANE_H + _LANE_GAP
    top = cursor
    texts.place(
        LEFT - 6, top + _LANE_H - 4, "gateway, comms", anchor="end", size=10, cls="lane-name"
    )
    body.append(
        f"<rect x='{LEFT}' y='{top}' width='{pw}' height='{_LANE_H}' fill='#eef7ee' stroke='#ddd'>"
        "<title>the gateway running and comms up</title></rect>"
    )
    for a, b in down:
        if b > t0 and a < t1:
            body.append(
                f"<rect class='gateway-down' x='{x(a):.1f}' y='{top}' width='{max(x(b) - x(a), 1):.1f}' "
                f"height='{_LANE_H}' fill='#333'><title>the gateway was not running "
                f"{escape(stamp(a))} .. {escape(stamp(b))}</title></rect>"
            )
    for period in model.comms:
        end = period.restored_s if period.restored_s is not None else t1
        if end > t0 and period.lost_s < t1:
            body.append(
                f"<rect class='comms-down' x='{x(period.lost_s):.1f}' y='{top + 4}' "
                f"width='{max(x(end) - x(period.lost_s), 1):.1f}' height='{_LANE_H - 8}' "
                f"fill='#999'><title>comms with the server down {escape(stamp(period.lost_s))} .. "
                f"{escape(stamp(period.restored_s) if period.restored_s is not None else 'end of log')}"
                "</title></rect>"
            )
    cursor += _LANE_H
    axis_y = cursor + 16
    for t, label in time_ticks(t0, t1, pw / span, zone):
        body.append(
            f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top_power}' y2='{cursor + 3}' "
            "stroke='#000' stroke-opacity='0.08'/>"
        )
        texts.place(
            x(t),
            axis_y,
            label,
            anchor="middle",
            cls="xtick",
            inside=(_EDGE_MARGIN, W - _EDGE_MARGIN),
        )
    cursor = axis_y + 10
    legend = [(c, "", label) for _, c, label in _MEASURED]
    legend += [(c, d, label) for mode, (c, d, _, label) in _POWER_LINES.items() if mode in steps]
    if setpoints:
        legend.append(_SETPOINT)
    if soc:
        legend.append(("#b58900", "", "state of charge (%)"))
    lx, ly = float(LEFT), cursor + 12
    for colour, dash, label in legend:
        width = 26 + text_width(label) + 18
        if lx + width > W - RIGHT:
            lx, ly = float(LEFT), ly + 16
        dash_attr = f" stroke-dasharray='{dash}'" if dash else ""
        body.append(
            f"<line x1='{lx:.1f}' x2='{lx + 20:.1f}' y1='{ly - 4:.1f}' y2='{ly - 4:.1f}' "
            f"stroke='{colour}' stroke-width='2'{dash_attr}/>"
        )
        texts.place(lx + 24, ly, label, cls="legend")
        lx += width
    height = ly + 10
    return "".join(
        [
            f"<svg class='chart' role='img' viewBox='0 0 {W} {height:.0f}' "
            f"font-family='{FONT_FAMILY}' font-size='{FONT_SIZE}' "
            f"preserveAspectRatio='xMinYMin meet'><title>{escape(window.title)}</title>",
            *body,
            *texts.svg,
            "</svg>",
        ]
    )


def _band_colour(mode: Mode, s: Stretch, palette: dict[str, str]) -> str:
    if mode in (Mode.CONNECT, Mode.ENERGIZE) and isinstance(s.value, bool):
        return "#bfe3b4" if s.value else "#f29a9a"
    source = s.source or "?"
    if source.startswith("default:"):
        return "#dcdcdc"
    if source not in palette:
        palette[source] = _PALETTE[len(palette) % len(_PALETTE)]
    return palette[source]


def _setpoints(model: Forensics, t0: float, t1: float) -> list[tuple[float, float, float]]:
    """The DER setpoint the gateway last wrote, as steps over the window (released: no step)."""
    out: list[tuple[float, float, float]] = []
    writes = model.writes
    times = [w.at_s for w in writes]
    i = max(bisect.bisect_right(times, t0) - 1, 0)
    current: tuple[float, float] | None = None
    for w in writes[i:]:
        if w.at_s > t1:
            break
        e = w.event
        value = e.setpoint_w
        if current is not None and (value is None or value != current[1]):
            out.append((max(current[0], t0), max(min(w.at_s, t1), t0), current[1]))
            current = None
        if value is not None and current is None:
            current = (w.at_s, value)
    if current is not None:
        out.append((max(current[0], t0), t1, current[1]))
    return [(a, b, v) for a, b, v in out if b > a]
