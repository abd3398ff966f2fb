"""`dfer-edge summarize`: kiosk analytics from the visit events `watch --events` writes.

An events file holds one JSON object per line, Frigate-style: {"type": "new" | "update" | "end",
"before": <visit or null>, "after": <visit>}. Only an "end" event carries a finished visit, so only those
are counted; "new" and "update" lines are read (so a broken one is still reported) and passed over.

Everything here is plain data in, plain data out: `parse_line` and `read_events` turn text into `Visit`s
and `Problem`s (a bad line never stops the rest of a file: a truncated last line is what a killed
`watch` leaves behind), `summarize` groups visits into `Bucket`s, and the `*_rows`/`to_dict` helpers
give the table, CSV and JSON the command prints. The chart is in `plot`, which imports matplotlib (an
optional extra) only when called.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Iterable, Iterator, Optional, TextIO

from .labels import LABELS

EVENT_TYPES = ("new", "update", "end")
GROUPINGS = ("hour", "day")
# Shares are written rounded (the example line has two decimals), so seven of them may miss 1 by a few
# hundredths; further off than this the line is not a share vector at all.
SHARE_SUM_TOLERANCE = 0.05

CSV_HEADER = ("bucket", "visits", "median_dwell_s", "looked_share", "dominant", *LABELS)


@dataclass(frozen=True)
class Visit:
    """One finished visit (the `after` of an "end" event), with `start` as an aware UTC datetime and the
    expression shares as a tuple in LABELS order, normalised to sum to 1."""

    id: str
    camera: str
    start: datetime
    dwell_s: float
    looking_s: float
    looked: bool
    shares: tuple[float, ...]
    dominant: str
    frames: int


@dataclass(frozen=True)
class Problem:
    """A line that could not be used: where (file name as given, 1-based line number) and why."""

    source: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.why}"


class BadEvent(ValueError):
    """A line that is not a usable event; the message says why, in a few words."""


@dataclass
class Events:
    """What `read_events` found: the finished visits (each id once, first seen wins), the bad lines,
    how many "end" lines repeated an id already seen (files concatenated twice), and the cameras seen."""

    visits: list[Visit] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    duplicates: int = 0
    lines: int = 0
    cameras: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Bucket:
    """The visits that started in one hour or day.

    `shares` is the dwell-weighted mean of the visits' expression shares: the share of people-time spent
    in each expression, so a 60-second visit weighs twelve times a 5-second one (a glance says less than
    a conversation). When every visit of the bucket has zero dwell (seen in one frame) it is the plain
    mean, so the bucket still has shares."""

    start: datetime
    label: str
    visits: int
    median_dwell_s: float
    looked_share: float
    shares: tuple[float, ...]
    dominant: str


def _timestamp(value: Any, name: str) -> datetime:
    """ISO 8601 with a zone ('...Z' or '+01:00') to an aware UTC datetime. Python 3.10's fromisoformat
    does not read 'Z', hence the replacement; a time without a zone is refused, as its hour is unknown."""
    if not isinstance(value, str):
        raise BadEvent(f"'{name}' is not a timestamp string")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise BadEvent(f"'{name}' is not an ISO 8601 time: {value!r}") from None
    if t.tzinfo is None:
        raise BadEvent(f"'{name}' has no time zone: {value!r}")
    return t.astimezone(timezone.utc)


def _number(state: dict[str, Any], name: str) -> float:
    v = state[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise BadEvent(f"'{name}' is not a non-negative number: {v!r}")
    return float(v)


def _visit(state: Any) -> Visit:
    """The finished visit of an "end" event's `after`, every field checked (a missing or mistyped one is a
    bad line, not a wrong number in the summary)."""
    if not isinstance(state, dict):
        raise BadEvent("'after' is not an object")
    for name in ("id", "camera", "start", "end", "dwell_s", "looking_s", "looked", "expressions", "dominant", "frames"):
        if name not in state:
            raise BadEvent(f"missing field 'after.{name}'")
    if not isinstance(state["id"], str) or not state["id"]:
        raise BadEvent("'id' is not a non-empty string")
    if not isinstance(state["camera"], str):
        raise BadEvent("'camera' is not a string")
    if not isinstance(state["looked"], bool):
        raise BadEvent("'looked' is not true or false")
    if isinstance(state["frames"], bool) or not isinstance(state["frames"], int) or state["frames"] < 0:
        raise BadEvent("'frames' is not a non-negative integer")
    if state["dominant"] not in LABELS:
        raise BadEvent(f"'dominant' is not an expression: {state['dominant']!r}")
    start = _timestamp(state["start"], "start")
    _timestamp(state["end"], "end")  # checked, not used: dwell_s is the time seen
    expressions = state["expressions"]
    if not isinstance(expressions, dict):
        raise BadEvent("'expressions' is not an object")
    missing = [k for k in LABELS if k not in expressions]
    if missing:
        raise BadEvent(f"missing expression {missing[0]!r}")
    shares = [_number(expressions, k) for k in LABELS]
    total = sum(shares)
    if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
        raise BadEvent(f"expression shares sum to {total:.3f}, not 1")
    return Visit(id=state["id"], camera=state["camera"], start=start, dwell_s=_number(state, "dwell_s"),
                 looking_s=_number(state, "looking_s"), looked=state["looked"],
                 shares=tuple(s / total for s in shares), dominant=state["dominant"], frames=state["frames"])


def parse_line(text: str) -> Optional[Visit]:
    """One line of an events file: the finished visit of an "end" event, None for "new"/"update" (and for
    a blank line), BadEvent with the reason for anything else."""
    if not text.strip():
        return None
    try:
        event = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadEvent(f"not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(event, dict) or "type" not in event:
        raise BadEvent("not an event (no 'type')")
    if event["type"] not in EVENT_TYPES:
        raise BadEvent(f"not an event (type {event['type']!r})")
    if "after" not in event:
        raise BadEvent("missing field 'after'")
    if event["type"] != "end":
        if not isinstance(event["after"], dict):
            raise BadEvent("'after' is not an object")
        return None
    return _visit(event["after"])


def read_events(sources: Iterable[tuple[str, Iterable[str]]], camera: Optional[str] = None) -> Events:
    """The finished visits in (name, lines) sources, in the order read, each visit id once (a repeated
    "end" is counted in `duplicates`, not again as a visit: files concatenated twice give the same
    numbers). `camera`: keep only that camera's visits. Bad lines are collected, never raised."""
    out = Events()
    seen: set[str] = set()
    for name, lines in sources:
        for number, text in enumerate(lines, 1):
            out.lines += 1
            try:
                visit = parse_line(text)
            except BadEvent as e:
                out.problems.append(Problem(name, number, str(e)))
                continue
            if visit is None:
                continue
            out.cameras.add(visit.camera)
            if camera is not None and visit.camera != camera:
                continue
            if visit.id in seen:
                out.duplicates += 1
                continue
            seen.add(visit.id)
            out.visits.append(visit)
    return out


def bucket_start(t: datetime, by: str, tz: Optional[tzinfo] = timezone.utc) -> datetime:
    """The start of the hour or day `t` falls in, in `tz` (None: this machine's local zone, DST
    included, so an hour repeated when clocks go back is two buckets with different offsets)."""
    local = t.astimezone(tz)
    if by == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if by == "day":
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")


def bucket_label(start: datetime, by: str) -> str:
    """'2026-12-05T10:00Z' (hour, UTC), '2026-12-05T10:00+01:00' (hour, elsewhere), '2026-12-05' (day)."""
    if by == "day":
        return start.date().isoformat()
    text = start.isoformat(timespec="minutes")
    return text[:-6] + "Z" if start.utcoffset() == timedelta(0) else text


def dominant(shares: tuple[float, ...]) -> str:
    """The expression with the largest share; a tie goes to the first in LABELS order."""
    return LABELS[max(range(len(LABELS)), key=lambda i: (shares[i], -i))]


def bucket_of(visits: list[Visit], start: datetime, label: str) -> Bucket:
    """The numbers of one group of visits (see Bucket for why the shares are weighted by dwell)."""
    weights = [v.dwell_s for v in visits]
    if sum(weights) == 0:
        weights = [1.0] * len(visits)
    total = sum(weights)
    shares = tuple(sum(w * v.shares[i] for w, v in zip(weights, visits)) / total for i in range(len(LABELS)))
    return Bucket(start=start, label=label, visits=len(visits),
                  median_dwell_s=statistics.median(v.dwell_s for v in visits),
                  looked_share=sum(v.looked for v in visits) / len(visits), shares=shares, dominant=dominant(shares))


def summarize(visits: Iterable[Visit], by: str = "hour", tz: Optional[tzinfo] = timezone.utc) -> list[Bucket]:
    """Visits grouped by the hour or day of their start in `tz` (None: local time), oldest first. Only
    buckets with visits appear: a night without visitors is not a row of zeros."""
    groups: dict[datetime, list[Visit]] = {}
    for v in visits:
        groups.setdefault(bucket_start(v.start, by, tz), []).append(v)
    return [bucket_of(groups[k], k, bucket_label(k, by)) for k in sorted(groups)]


def overall(visits: list[Visit]) -> Bucket:
    """All visits as one bucket (the table's and JSON's total), labelled 'all'."""
    return bucket_of(visits, min(v.start for v in visits), "all")


def bucket_dict(b: Bucket) -> dict[str, Any]:
    """A bucket as JSON/CSV values, rounded once here (dwell to the millisecond, shares to 4 decimals) so
    the CSV and the JSON say the same numbers."""
    return {"bucket": b.label, "visits": b.visits, "median_dwell_s": round(b.median_dwell_s, 3),
            "looked_share": round(b.looked_share, 4), "dominant": b.dominant,
            "expressions": {k: round(s, 4) for k, s in zip(LABELS, b.shares)}}


def csv_rows(buckets: list[Bucket]) -> list[list[Any]]:
    """Rows under CSV_HEADER, one per bucket."""
    rows = []
    for b in buckets:
        d = bucket_dict(b)
        rows.append([d["bucket"], d["visits"], d["median_dwell_s"], d["looked_share"], d["dominant"],
                     *d["expressions"].values()])
    return rows


def to_dict(buckets: list[Bucket], events: Events, by: str, zone: str, camera: Optional[str],
            files: list[str]) -> dict[str, Any]:
    """The --json document: how it was grouped, what was read, the buckets and the total."""
    return {"by": by, "timezone": zone, "camera": camera, "files": files, "lines": events.lines,
            "bad_lines": len(events.problems), "duplicates": events.duplicates, "visits": len(events.visits),
            "expression_shares": "dwell-weighted mean of each visit's shares (share of people-time)",
            "buckets": [bucket_dict(b) for b in buckets], "total": bucket_dict(overall(events.visits))}


def table(buckets: list[Bucket], total: Bucket, by: str, zone: str) -> str:
    """The readable table: one row per bucket and a total, shares as whole percentages."""
    heads = [f"{by} ({zone})", "visits", "median dwell", "looked", "dominant", *LABELS]
    rows = [[b.label.replace("T", " "), str(b.visits), f"{b.median_dwell_s:.1f} s", f"{b.looked_share:.0%}", b.dominant,
             *(f"{s:.0%}" for s in b.shares)] for b in [*buckets, total]]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        # Bucket and dominant read left-aligned, numbers right-aligned.
        cols = (c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(cols).rstrip()

    out = [line(heads), *map(line, rows[:-1]), "-" * len(line(heads)), line(rows[-1])]
    return "\n".join(out)


def open_lines(path: str, stdin: TextIO) -> Iterator[str]:
    """The lines of a file ('-': stdin), read lazily. Undecodable bytes become U+FFFD, so a corrupt
    line is a bad JSON line reported with its number, not an exception that loses the whole file."""
    if path == "-":
        yield from stdin
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        yield from f


# The chart's colours, one per expression in LABELS order: warm for happiness, grey for neutral, blues for
# sadness, reds/greens/purples for the rest, told apart in greyscale by their lightness too.
COLOURS = ("#f2b134", "#b9b9b9", "#4a78b5", "#c8423b", "#6a9a3a", "#e07bb3", "#7b5aa6")


def chart_title(buckets: list[Bucket], by: str, visits: list[Visit]) -> str:
    """'Visits and expressions per hour, camera lobby, 2026-03-10 (300 visits)': what, where, when, how many,
    so a picture copied out of its report still says what it shows."""
    days = sorted({b.start.date() for b in buckets})
    span = days[0].isoformat() if len(days) == 1 else f"{days[0].isoformat()} to {days[-1].isoformat()}"
    cameras = sorted({v.camera for v in visits})
    where = (f"camera {cameras[0]}, " if len(cameras) == 1 else
             f"cameras {', '.join(cameras)}, " if len(cameras) <= 3 else f"{len(cameras)} cameras, ")
    return f"Visits and expressions per {by}, {where}{span} ({len(visits)} visits)"


def plot(buckets: list[Bucket], out: str, by: str, zone: str, title: str) -> None:
    """Stacked expression shares per bucket (bars, left axis, percent) and visits per bucket (line, right
    axis), saved as a PNG with the Agg backend (no display needed on a headless kiosk). Raises
    ImportError without matplotlib, OSError when the file cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    # 12-pt text stays readable when the 1000-px picture is shown at README width (~800 px).
    with plt.rc_context({"font.size": 12}):
        fig = _draw(plt, buckets, by, zone, title)
        try:
            # No version stamp: the same events and matplotlib give the same bytes (a quiet `git status`).
            fig.savefig(out, format="png", metadata={"Software": None})
        finally:
            plt.close(fig)


def _draw(plt: Any, buckets: list[Bucket], by: str, zone: str, title: str) -> Any:
    from matplotlib import patheffects
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    x = list(range(len(buckets)))
    one_day = by == "hour" and len({b.start.date() for b in buckets}) == 1
    one_year = len({b.start.year for b in buckets}) == 1
    short = "%H:%M" if one_day else "%m-%d %H:%M" if by == "hour" and one_year else None
    labels = [b.start.strftime(short) if short else b.label.replace("T", " ") for b in buckets]
    step = math.ceil(len(buckets) / 24)  # at most ~24 tick labels, however many buckets
    upright = len(buckets) <= 12 and one_day
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=100)
    bottom = [0.0] * len(buckets)
    for i, name in enumerate(LABELS):
        heights = [b.shares[i] * 100 for b in buckets]
        ax.bar(x, heights, bottom=bottom, width=0.8, color=COLOURS[i], label=name, edgecolor="white", linewidth=0.4)
        bottom = [a + h for a, h in zip(bottom, heights)]
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.set_ylabel("expression share of people-time")
    ax.set_xlabel(f"{by} ({zone})")
    ax.set_xticks(x[::step], labels[::step], rotation=0 if upright else 45, ha="center" if upright else "right")
    ax.set_xlim(-0.6, len(buckets) - 0.4)
    right = ax.twinx()
    halo = [patheffects.withStroke(linewidth=5, foreground="white")]  # the line stays visible over any bar
    right.plot(x, [b.visits for b in buckets], color="black", marker="o" if len(buckets) <= 48 else None,
               linewidth=2, label="visits", path_effects=halo)
    right.set_ylim(0, max(b.visits for b in buckets) * 1.15)
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("visits")
    handles, names = ax.get_legend_handles_labels()
    line_handles, line_names = right.get_legend_handles_labels()
    # Legend top to bottom as the stack reads, then the line; outside the plot so it hides no bar.
    ax.legend(handles[::-1] + line_handles, names[::-1] + line_names, loc="upper left", bbox_to_anchor=(1.08, 1.0),
              frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig
