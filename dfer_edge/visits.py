"""Visits: the people who stopped in front of a camera, from the per-frame faces `watch` follows.

A kiosk owner does not read per-frame JSON; they want to know how many people stopped, for how long,
whether they looked at the screen and how they reacted. A followed face becomes a visit; the visit ends
when its face has been gone for `VisitOptions.gone` seconds (a face the tracker lost and found again
nearby within that time, under a new id, continues the same visit). Each visit is reported as
Frigate-style events, one JSON object each:

    {"type": "new" | "update" | "end", "before": <the visit as last reported, or null>, "after": <the visit now>}

The visit itself (`Visit.to_dict`): id, camera, start and end (UTC wall clock, ISO 8601), dwell_s,
looking_s, looked, the share of the visit's time spent showing each expression (the top label of each
frame's smoothed probabilities, weighted by the time until the next frame), the dominant one, and frames.
Events carry numbers only: no image, crop, landmark or box.

Pure bookkeeping over plain frame records (`results.frame_record`), so it can be replayed from a
`watch --jsonl` file and tested without a camera.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .labels import LABELS

GONE_S = 3.0
UPDATE_EVERY_S = 10.0
LOOKED_S = 1.0
MIN_DWELL_S = 0.5


@dataclass(frozen=True)
class VisitOptions:
    """When a visit starts, ends and is reported."""

    camera: str = "default"
    gone: float = GONE_S  # seconds a face must be gone before its visit ends
    update_every: float = UPDATE_EVERY_S  # seconds between `update` events of one visit; 0: none
    looked_s: float = LOOKED_S  # seconds of looking at the camera for a visit to count as `looked`
    min_dwell: float = MIN_DWELL_S  # a face seen for less than this is no visit (no event at all)


def iso(wall: float) -> str:
    """UTC wall-clock seconds -> '2026-12-05T10:15:02.120Z'."""
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Visit:
    """One person's stay, as far as it has been seen."""

    id: str
    camera: str
    track: int  # the tracker's id of the face now (a lost and found face changes it)
    first_t: float  # source seconds
    last_t: float
    first_wall: float  # UTC seconds
    box: tuple[float, float, float, float]  # where the face was last seen (to join a lost face again)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LABELS, 0.0))
    looking_s: float = 0.0
    frames: int = 0
    label: str | None = None  # the top label at the last sighting
    looking: bool = False
    ended: bool = False
    reported: dict[str, Any] | None = None  # the visit as the last event said
    reported_t: float = -math.inf

    @property
    def dwell_s(self) -> float:
        return self.last_t - self.first_t

    def see(self, t: float, face: dict[str, Any], gone: float) -> None:
        """One more sighting: the time since the last one goes to what the face shows now (capped at `gone`,
        so a long gap never counts as showing something)."""
        if self.frames:
            dt = min(max(t - self.last_t, 0.0), gone)
            self.seconds[face["label"]] += dt
            if face.get("looking"):
                self.looking_s += dt
        self.last_t = t
        self.frames += 1
        self.label = face["label"]
        self.looking = bool(face.get("looking"))
        self.box = tuple(face["box"])

    def to_dict(self, start_wall_of, looked_s: float) -> dict[str, Any]:
        total = sum(self.seconds.values())
        shares = {k: (v / total if total > 0 else float(k == self.label)) for k, v in self.seconds.items()}
        dominant = max(LABELS, key=lambda k: (shares[k], k == self.label))
        return {"id": self.id, "camera": self.camera, "start": iso(self.first_wall),
                "end": iso(start_wall_of(self.last_t)) if self.ended else None,
                "dwell_s": round(self.dwell_s, 3), "looking_s": round(self.looking_s, 3),
                "looked": self.looking_s >= looked_s,
                "expressions": {k: round(v, 4) for k, v in shares.items()}, "dominant": dominant,
                "frames": self.frames}


def _near(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """A face found again where a lost one was: centres within one face width, sizes within 2x."""
    wa, wb = a[2] - a[0], b[2] - b[0]
    if wa <= 0 or wb <= 0 or not 0.5 <= wa / wb <= 2.0:
        return False
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) <= max(wa, wb)


class Visits:
    """Feed it every processed frame's record in order; it returns the events that frame caused.

    >>> visits = Visits(VisitOptions(camera="lobby"))
    >>> for record in records: events = visits.frame(record)
    >>> events = visits.close()   # at the end of the run: every open visit ends
    """

    def __init__(self, options: VisitOptions = VisitOptions(), wall: float | None = None) -> None:
        self.options = options
        self._wall0 = wall  # UTC seconds of the first frame (None: the clock when it arrives)
        self._t0: float | None = None
        self.open: dict[int, Visit] = {}  # by the tracker's id of the face now
        self.finished = 0  # visits that ended with an `end` event
        self.last_t = 0.0

    def wall_of(self, t: float) -> float:
        """Source seconds -> UTC seconds (a file's time is laid from the moment its first frame was read)."""
        return (self._wall0 or 0.0) + (t - (self._t0 or 0.0))

    def frame(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of one frame (`results.frame_record`): `new` once a face has stayed `min_dwell`,
        `update` at most every `update_every` s, `end` for visits whose face has been gone `gone` s."""
        t = float(record["t"])
        if self._t0 is None:
            self._t0 = t
            if self._wall0 is None:
                self._wall0 = time.time()
        self.last_t = t
        seen = set()
        for face in record["faces"]:
            visit = self.open.get(face["id"]) or self._rejoin(face, t)
            if visit is None:
                visit = Visit(f"{self.options.camera}-{round(self.wall_of(t) * 1000)}-{face['id']}", self.options.camera,
                              face["id"], t, t, self.wall_of(t), tuple(face["box"]))
                self.open[face["id"]] = visit
            visit.see(t, face, self.options.gone)
            seen.add(face["id"])
        events = []
        for track, visit in list(self.open.items()):
            if track not in seen and t - visit.last_t >= self.options.gone:
                del self.open[track]
                events += self._end(visit)
            elif track in seen and visit.dwell_s >= self.options.min_dwell:  # no news of a face not in view
                if visit.reported is None:
                    events.append(self._event("new", visit, t))
                elif self.options.update_every > 0 and t - visit.reported_t >= self.options.update_every:
                    events.append(self._event("update", visit, t))
        return events

    def close(self) -> list[dict[str, Any]]:
        """End every open visit (the run is over)."""
        events = []
        for visit in self.open.values():
            events += self._end(visit)
        self.open.clear()
        return events

    def present(self) -> list[Visit]:
        """The visits whose face is in the latest frame."""
        return [v for v in self.open.values() if v.last_t == self.last_t]

    def _rejoin(self, face: dict[str, Any], t: float) -> Visit | None:
        """A visit whose face was lost (not seen this frame, gone less than `gone` s) where this new face is."""
        for track, visit in self.open.items():
            if visit.last_t < t and _near(visit.box, tuple(face["box"])):
                del self.open[track]
                visit.track = face["id"]
                self.open[face["id"]] = visit
                return visit
        return None

    def _end(self, visit: Visit) -> list[dict[str, Any]]:
        if visit.reported is None and visit.dwell_s < self.options.min_dwell:
            return []  # too short to be a visit: never reported
        visit.ended = True
        self.finished += 1
        return [self._event("end", visit, visit.last_t)]

    def _event(self, kind: str, visit: Visit, t: float) -> dict[str, Any]:
        after = visit.to_dict(self.wall_of, self.options.looked_s)
        event = {"type": kind, "before": visit.reported, "after": after}
        visit.reported, visit.reported_t = after, t
        return event


def dominant_expression(faces: list[dict[str, Any]]) -> str | None:
    """The expression most of the people in a frame show (ties: the higher summed score); None for nobody."""
    if not faces:
        return None
    count: dict[str, tuple[int, float]] = {}
    for f in faces:
        n, s = count.get(f["label"], (0, 0.0))
        count[f["label"]] = (n + 1, s + f["score"])
    return max(count, key=lambda k: count[k])
