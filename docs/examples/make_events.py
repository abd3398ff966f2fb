"""A synthetic day of `dfer-edge watch --events` lines at one kiosk camera, for the README's picture and tests.

Why synthetic: a real day at a kiosk is people's faces, which we do not publish. The numbers are made to look
like one: the kiosk is open 09:00-18:00 (UTC, a winter day in London, so local time too), visitors arrive at a
steady rate with a lunch-time crowd on top, dwell times are log-normal (most people glance for a few seconds,
a few stay a minute), about two thirds look at the screen long enough to count, and the mood is mostly neutral,
happier at lunch. The seed is fixed and only the standard library and dfer_edge.labels are used, so
`python docs/examples/make_events.py` writes the same bytes on every machine.

Each visit gets the lines watch writes: "new" at the first sighting, an "update" when the visitor is first
counted as having looked, and "end" when the face is gone, all interleaved in time order as one log would hold
them (about 900 lines, 300 visits; shares with two decimals, as watch writes them, to keep the file small).

Usage: python docs/examples/make_events.py [OUT.jsonl]   (default: docs/examples/kiosk-events.jsonl)
"""

from __future__ import annotations

import json
import math
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dfer_edge.labels import LABELS

SEED = 20260310
DAY = datetime(2026, 3, 10, tzinfo=timezone.utc)  # a Tuesday
OPEN_H, CLOSE_H = 9.0, 18.0
STEADY, LUNCH = 190, 110  # visits spread over the day, and the lunch crowd (about 12:45, sd 40 min)
CAMERA = "lobby"
LOOKED_S = 1.0  # looking_s at which a visit counts as looked (watch's default threshold)
FPS = 12.0  # frames a Pi 4 processes per second at the kiosk

# Mean expression shares of a visit in the morning and at lunch (LABELS order); each visit draws its own
# shares around these (Dirichlet, concentration 12), so a few visits are dominated by another expression.
MORNING = (0.20, 0.55, 0.08, 0.04, 0.02, 0.07, 0.04)
LUNCH_MOOD = (0.38, 0.42, 0.05, 0.03, 0.02, 0.07, 0.03)
CONCENTRATION = 12.0


def iso(t: datetime) -> str:
    """UTC with milliseconds and a trailing Z, as watch writes it."""
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def arrival_hours(rng: random.Random) -> list[float]:
    """Hours of the day at which visitors arrive, sorted: a steady stream plus the lunch peak."""
    hours = [rng.uniform(OPEN_H, CLOSE_H - 0.05) for _ in range(STEADY)]
    while len(hours) < STEADY + LUNCH:
        h = rng.gauss(12.75, 40 / 60)
        if OPEN_H <= h < CLOSE_H - 0.05:
            hours.append(h)
    return sorted(hours)


def shares_for(rng: random.Random, hour: float) -> list[float]:
    """One visit's expression shares (2 decimals, summing to 1 but for float rounding): a Dirichlet draw around the mood
    of the hour, lunch blending in with a bell around 12:45."""
    w = math.exp(-0.5 * ((hour - 12.75) / 0.9) ** 2)
    mean = [(1 - w) * m + w * lu for m, lu in zip(MORNING, LUNCH_MOOD)]
    raw = [rng.gammavariate(CONCENTRATION * m, 1.0) for m in mean]
    total = sum(raw)
    shares = [round(r / total, 2) for r in raw]
    top = max(range(len(shares)), key=shares.__getitem__)
    shares[top] = round(shares[top] + 1 - sum(shares), 2)
    return shares


def state(vid: str, start: datetime, seen_s: float, looking_s: float, shares: list[float], done: bool) -> dict:
    """A visit's state `seen_s` seconds after its first sighting (the shape of an event's before/after)."""
    expressions = dict(zip(LABELS, shares))
    return {"id": vid, "camera": CAMERA, "start": iso(start),
            "end": iso(start + timedelta(seconds=seen_s)) if done else None,
            "dwell_s": round(seen_s, 2), "looking_s": round(looking_s, 2), "looked": looking_s >= LOOKED_S,
            "expressions": expressions, "dominant": max(expressions, key=expressions.get),
            "frames": max(1, round(seen_s * FPS * 0.9))}


def events(rng: random.Random) -> list[tuple[datetime, int, dict]]:
    """Every event line of the day as (time, order, event), to be sorted into one log."""
    run_start = DAY + timedelta(hours=8, minutes=55)
    run_id = round(run_start.timestamp() * 1000)
    out = []
    for n, hour in enumerate(arrival_hours(rng), 1):
        vid = f"{CAMERA}-{run_id}-{n}"
        start = DAY + timedelta(milliseconds=round(hour * 3600 * 1000))
        dwell = min(180.0, max(0.4, rng.lognormvariate(math.log(6.0), 0.85)))
        looking = dwell * rng.betavariate(2.0, 2.2) if rng.random() < 0.85 else 0.0
        shares = shares_for(rng, hour)
        # The face's first look at the screen comes after a moment; looking_s grows evenly after it.
        first_look = 0.0 if looking == 0 else rng.uniform(0, dwell - looking)

        def at(t: float, done: bool = False) -> dict:
            seen_look = min(looking, max(0.0, t - first_look)) if looking else 0.0
            return state(vid, start, t, seen_look, shares, done)

        times = [0.0]
        if looking >= LOOKED_S:
            times.append(first_look + LOOKED_S)
        times = sorted(t for t in set(times) if t < dwell)
        before = None
        for i, t in enumerate(times):
            now = at(t)
            out.append((start + timedelta(seconds=t), n, {"type": "new" if i == 0 else "update", "before": before,
                                                          "after": now}))
            before = now
        out.append((start + timedelta(seconds=dwell), n, {"type": "end", "before": before, "after": at(dwell, True)}))
    return out


def main(argv: list[str]) -> None:
    out = Path(argv[1] if len(argv) > 1 else Path(__file__).with_name("kiosk-events.jsonl"))
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e) for _, _, e in sorted(events(random.Random(SEED)), key=lambda x: (x[0], x[1]))]
    out.write_text("".join(line + "\n" for line in lines))
    visits = sum(1 for x in lines if json.loads(x)["type"] == "end")
    print(f"{out}: {len(lines)} events, {visits} visits")


if __name__ == "__main__":
    main(sys.argv)
