"""`dfer-edge summarize`: kiosk analytics from `watch --events` files. The numbers are checked against values
worked out by hand from a small hand-written day; the command is run as users run it, in a subprocess, on
real files; the pure functions of dfer_edge.summary are called directly for what the command only prints."""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dfer_edge import summary
from dfer_edge.labels import LABELS
from tests import helpers

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "kiosk-events.jsonl"
PICTURE = REPO / "docs" / "img" / "kiosk-summary.png"
TIMEOUT = 120


def state(vid: str, start: str, dwell: float, looking: float, looked: bool, shares: dict[str, float],
          camera: str = "kiosk", done: bool = True) -> dict:
    """A visit in the exact shape of an event's before/after."""
    expressions = {k: float(shares.get(k, 0.0)) for k in LABELS}
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    end = (t0 + timedelta(seconds=dwell)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"id": vid, "camera": camera, "start": start, "end": end if done else None, "dwell_s": dwell,
            "looking_s": looking, "looked": looked, "expressions": expressions,
            "dominant": max(expressions, key=expressions.get), "frames": max(1, int(dwell * 10))}


def lines_of(after: dict) -> list[str]:
    """The "new", "update" and "end" lines watch writes for one finished visit."""
    new = {**after, "end": None, "dwell_s": 0.0, "looking_s": 0.0, "looked": False, "frames": 1}
    mid = {**after, "end": None, "dwell_s": after["dwell_s"] / 2, "frames": max(1, after["frames"] // 2)}
    return [json.dumps({"type": "new", "before": None, "after": new}),
            json.dumps({"type": "update", "before": new, "after": mid}),
            json.dumps({"type": "end", "before": mid, "after": after})]


# The hand-written day. Hours are UTC; C starts a millisecond before 11:00 and D exactly at 11:00, so the
# hour boundary is tested; E is another camera; F (the next day) was seen in one frame (zero dwell).
A = state("kiosk-1-1", "2026-12-05T10:05:00.000Z", 10.0, 6.0, True, {"happiness": 1.0})
B = state("kiosk-1-2", "2026-12-05T10:40:00.000Z", 30.0, 0.0, False, {"neutral": 1.0})
C = state("kiosk-1-3", "2026-12-05T10:59:59.999Z", 20.0, 3.5, True, {"happiness": 0.5, "neutral": 0.5})
D = state("kiosk-1-4", "2026-12-05T11:00:00.000Z", 4.0, 0.2, False, {"sadness": 1.0})
E = state("door-7-1", "2026-12-05T11:30:00.000Z", 8.0, 5.0, True, {"surprise": 1.0}, camera="door")
F = state("kiosk-2-1", "2026-12-06T09:15:00.000Z", 0.0, 0.0, False, {"fear": 1.0})
DAY = [A, B, C, D, E, F]


def shares_of(**kv: float) -> list[float]:
    return [kv.get(k, 0.0) for k in LABELS]


# Worked out by hand (see each comment); the expression shares weigh each visit by its dwell.
HOURLY = {
    # A, B, C: dwell 10, 30, 20 -> median 20; A and C looked; happiness (10*1 + 20*0.5)/60, neutral (30 + 20*0.5)/60.
    # Unweighted it would be a 50/50 tie; weighted by dwell, neutral leads.
    "2026-12-05T10:00Z": dict(visits=3, median=20.0, looked=2 / 3, shares=shares_of(happiness=1 / 3, neutral=2 / 3),
                              dominant="neutral"),
    # D and E: dwell 4 and 8 -> median 6; E looked; sadness 4/12, surprise 8/12.
    "2026-12-05T11:00Z": dict(visits=2, median=6.0, looked=0.5, shares=shares_of(sadness=1 / 3, surprise=2 / 3),
                              dominant="surprise"),
    # F alone, zero dwell: its own shares (the plain mean when no visit has any dwell).
    "2026-12-06T09:00Z": dict(visits=1, median=0.0, looked=0.0, shares=shares_of(fear=1.0), dominant="fear"),
}
DAILY = {
    # A-E: dwell 10, 30, 20, 4, 8 -> median 10; A, C, E looked; total dwell 72.
    "2026-12-05": dict(visits=5, median=10.0, looked=3 / 5,
                       shares=shares_of(happiness=20 / 72, neutral=40 / 72, sadness=4 / 72, surprise=8 / 72),
                       dominant="neutral"),
    "2026-12-06": dict(visits=1, median=0.0, looked=0.0, shares=shares_of(fear=1.0), dominant="fear"),
}


def write_day(path: Path, visits: list[dict] = DAY, extra: list[str] = ()) -> Path:
    lines = [line for v in visits for line in lines_of(v)] + list(extra)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def run_cli(*args: object, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """helpers.run_cli with a time zone or stdin of our own (the same `python -m dfer_edge` as users run)."""
    if env is None and stdin is None:
        return helpers.run_cli(*args, timeout=TIMEOUT)
    full = {k: v for k, v in os.environ.items() if k != "DFER_VERBOSE"} | (env or {})
    return subprocess.run([sys.executable, "-m", "dfer_edge", *map(str, args)], cwd=REPO, env=full, input=stdin,
                          capture_output=True, text=True, timeout=TIMEOUT)


def check_buckets(got: list, want: dict) -> None:
    """Buckets (summary.Bucket or the JSON's dicts) against hand-computed values."""
    as_dicts = [summary.bucket_dict(b) if isinstance(b, summary.Bucket) else b for b in got]
    assert [b["bucket"] for b in as_dicts] == list(want)
    for b in as_dicts:
        w = want[b["bucket"]]
        assert b["visits"] == w["visits"]
        assert b["median_dwell_s"] == pytest.approx(w["median"], abs=1e-3)
        assert b["looked_share"] == pytest.approx(w["looked"], abs=1e-4)
        assert list(b["expressions"]) == list(LABELS)
        assert list(b["expressions"].values()) == pytest.approx(w["shares"], abs=1e-4)
        assert b["dominant"] == w["dominant"]


def one_error_line(p: subprocess.CompletedProcess) -> str:
    """The failure contract of every command: non-zero exit, one line on stderr, no traceback."""
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- the pure functions -------------------------------------------------------------------------------


def read(*paths: Path, camera: str | None = None) -> summary.Events:
    return summary.read_events([(str(p), summary.open_lines(str(p), sys.stdin)) for p in paths], camera)


def test_per_hour_numbers_by_hand(tmp_path):
    events = read(write_day(tmp_path / "day.jsonl"))
    assert events.problems == [] and events.duplicates == 0
    assert [v.id for v in events.visits] == [v["id"] for v in DAY]  # only "end" lines make visits
    assert events.lines == 3 * len(DAY)
    check_buckets(summary.summarize(events.visits, "hour"), HOURLY)


def test_per_day_numbers_by_hand(tmp_path):
    events = read(write_day(tmp_path / "day.jsonl"))
    check_buckets(summary.summarize(events.visits, "day"), DAILY)
    total = summary.bucket_dict(summary.overall(events.visits))
    assert total["bucket"] == "all" and total["visits"] == 6
    assert total["median_dwell_s"] == statistics.median([10, 30, 20, 4, 8, 0])


def test_dwell_weighting_is_people_time():
    """A 60-s smile and a 5-s frown: people-time is 60/65 smiling, where a plain mean would say half."""
    visits = [summary._visit(state("a", "2026-12-05T10:00:00.000Z", 60.0, 0, False, {"happiness": 1.0})),
              summary._visit(state("b", "2026-12-05T10:10:00.000Z", 5.0, 0, False, {"sadness": 1.0}))]
    (b,) = summary.summarize(visits)
    assert b.shares[LABELS.index("happiness")] == pytest.approx(60 / 65)
    assert b.shares[LABELS.index("sadness")] == pytest.approx(5 / 65)
    assert sum(b.shares) == pytest.approx(1.0)


def test_other_time_zone_moves_hours_and_days(tmp_path):
    events = read(write_day(tmp_path / "day.jsonl"))
    west = timezone(timedelta(hours=-11))
    days = summary.summarize(events.visits, "day", west)
    # A, B, C are 23:xx on the 4th there; D, E just after midnight on the 5th; F 22:15 on the 5th.
    assert [(b.label, b.visits) for b in days] == [("2026-12-04", 3), ("2026-12-05", 3)]
    # Hours are the clock hours there: A is 15:35; B, C and D 16:10-16:30; E 17:00; F 14:45 the next day.
    hours = summary.summarize(events.visits, "hour", timezone(timedelta(hours=5, minutes=30)))
    assert [(b.label, b.visits) for b in hours] == [("2026-12-05T15:00+05:30", 1), ("2026-12-05T16:00+05:30", 3),
                                                    ("2026-12-05T17:00+05:30", 1), ("2026-12-06T14:00+05:30", 1)]


def test_repeated_end_counted_once(tmp_path):
    once = write_day(tmp_path / "day.jsonl")
    twice = tmp_path / "twice.jsonl"
    twice.write_text(once.read_text() * 2)
    events = read(twice)
    assert len(events.visits) == len(DAY) and events.duplicates == len(DAY)
    check_buckets(summary.summarize(events.visits, "hour"), HOURLY)
    # The same visit in two files (a log and its rotated copy) too.
    events = read(once, once)
    assert len(events.visits) == len(DAY) and events.duplicates == len(DAY)


def test_camera_filter(tmp_path):
    events = read(write_day(tmp_path / "day.jsonl"), camera="kiosk")
    assert [v.id for v in events.visits] == [A["id"], B["id"], C["id"], D["id"], F["id"]]
    assert events.cameras == {"kiosk", "door"}
    hours = summary.summarize(events.visits, "hour")
    eleven = summary.bucket_dict(hours[1])
    assert eleven["bucket"] == "2026-12-05T11:00Z"
    assert (eleven["visits"], eleven["median_dwell_s"], eleven["looked_share"]) == (1, 4.0, 0.0)
    assert eleven["dominant"] == "sadness"


@pytest.mark.parametrize("line, why", [
    ('{"type": "end", "before": null, "after": {"id": ', "not JSON"),
    ('[1, 2]', "not an event"),
    ('{"frame": 3, "t": 0.1, "faces": []}', "not an event (no 'type')"),
    ('{"type": "stop", "before": null, "after": {}}', "not an event (type 'stop')"),
    ('{"type": "end", "before": null}', "missing field 'after'"),
    (json.dumps({"type": "end", "before": None, "after": {k: v for k, v in A.items() if k != "dwell_s"}}),
     "missing field 'after.dwell_s'"),
    (json.dumps({"type": "end", "before": None, "after": {**A, "start": "2026-12-05T10:05:00"}}), "has no time zone"),
    (json.dumps({"type": "end", "before": None, "after": {**A, "start": "yesterday"}}), "not an ISO 8601 time"),
    (json.dumps({"type": "end", "before": None, "after": {**A, "dwell_s": -1}}), "'dwell_s' is not a non-negative"),
    (json.dumps({"type": "end", "before": None, "after": {**A, "looked": "yes"}}), "'looked' is not true or false"),
    (json.dumps({"type": "end", "before": None, "after": {**A, "expressions": {"happiness": 1.0}}}),
     "missing expression 'neutral'"),
    (json.dumps({"type": "end", "before": None, "after": {**A, "expressions": {k: 0.5 for k in LABELS}}}),
     "sum to 3.500, not 1"),
    (json.dumps({"type": "update", "before": None, "after": None}), "'after' is not an object"),
])
def test_bad_lines_say_why(line, why):
    with pytest.raises(summary.BadEvent) as e:
        summary.parse_line(line)
    assert why in str(e.value)


def test_rounded_shares_are_normalised():
    """Shares written with two decimals may sum to 0.99 or 1.01: accepted, and made to sum to 1."""
    v = summary.parse_line(json.dumps({"type": "end", "before": None, "after": {**A, "expressions": {
        "happiness": 0.60, "neutral": 0.3, "sadness": 0.02, "anger": 0.01, "disgust": 0.0, "surprise": 0.05,
        "fear": 0.01}}}))
    assert sum(v.shares) == pytest.approx(1.0) and v.shares[0] == pytest.approx(0.60 / 0.99)
    assert summary.parse_line(lines_of(A)[0]) is None and summary.parse_line("  \n") is None


# --- the command ---------------------------------------------------------------------------------------


def test_table_is_the_default(tmp_path):
    p = run_cli("summarize", write_day(tmp_path / "day.jsonl"))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["hour", "(UTC)", "visits"] and lines[0].split()[-7:] == list(LABELS)
    rows = {line.split()[1]: line.split() for line in lines[1:4]}
    assert set(rows) == {"10:00Z", "11:00Z", "09:00Z"}
    assert rows["10:00Z"][2:8] == ["3", "20.0", "s", "67%", "neutral", "33%"]
    assert lines[-1].split()[:6] == ["all", "6", "9.0", "s", "50%", "neutral"]  # median of 10,30,20,4,8,0


def test_csv_and_json_agree(tmp_path):
    day = write_day(tmp_path / "day.jsonl")
    as_csv = run_cli("summarize", day, "--csv")
    as_json = run_cli("summarize", day, "--json")
    assert as_csv.returncode == 0 and as_json.returncode == 0, as_csv.stderr + as_json.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(rows[0]) == list(summary.CSV_HEADER)
    doc = json.loads(as_json.stdout)
    assert (doc["by"], doc["timezone"], doc["camera"], doc["visits"], doc["bad_lines"]) == ("hour", "UTC", None, 6, 0)
    check_buckets(doc["buckets"], HOURLY)
    assert len(rows) == len(doc["buckets"])
    for row, b in zip(rows, doc["buckets"]):
        assert row["bucket"] == b["bucket"] and int(row["visits"]) == b["visits"]
        assert float(row["median_dwell_s"]) == b["median_dwell_s"] and float(row["looked_share"]) == b["looked_share"]
        assert row["dominant"] == b["dominant"]
        assert [float(row[k]) for k in LABELS] == list(b["expressions"].values())
    daily = json.loads(run_cli("summarize", day, "--json", "--by", "day").stdout)
    check_buckets(daily["buckets"], DAILY)


def test_cli_dedup_camera_and_stdin(tmp_path):
    day = write_day(tmp_path / "day.jsonl")
    twice = tmp_path / "twice.jsonl"
    twice.write_text(day.read_text() * 2)
    doc = json.loads(run_cli("summarize", twice, "--json").stdout)
    assert doc["visits"] == 6 and doc["duplicates"] == 6
    check_buckets(doc["buckets"], HOURLY)
    p = run_cli("summarize", "-", "--json", "--camera", "door", stdin=day.read_text())
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["camera"] == "door" and doc["files"] == ["-"]
    assert [(b["bucket"], b["visits"], b["median_dwell_s"], b["dominant"]) for b in doc["buckets"]] == [
        ("2026-12-05T11:00Z", 1, 8.0, "surprise")]
    p = run_cli("summarize", "-", "--csv", stdin=day.read_text() + "oops\n")
    assert p.returncode == 1
    assert p.stderr == f"warning: <stdin>:{3 * len(DAY) + 1}: not JSON (Expecting value at column 1)\n"
    assert len(p.stdout.splitlines()) == 1 + len(HOURLY)


def test_local_time_zone(tmp_path):
    """--local groups by this machine's zone (TZ, a POSIX rule that needs no tz database: UTC+2)."""
    p = run_cli("summarize", write_day(tmp_path / "day.jsonl"), "--local", "--json", env={"TZ": "XST-2"})
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["timezone"] == "XST"
    # C (10:59:59.999Z) is 12:59 there, D (11:00Z) 13:00: the same split, two hours later.
    assert [(b["bucket"], b["visits"]) for b in doc["buckets"]] == [
        ("2026-12-05T12:00+02:00", 3), ("2026-12-05T13:00+02:00", 2), ("2026-12-06T11:00+02:00", 1)]


def test_broken_lines_warn_once_each_and_the_rest_is_summarised(tmp_path):
    lines = [line for v in DAY for line in lines_of(v)]
    lines.insert(4, '{"type": "end", "before": null, "after": {"id": "kiosk-1-9", "cam')  # line 5: cut short
    lines.insert(8, "this is not json")  # line 9
    bad_end = {"type": "end", "before": None, "after": {k: v for k, v in D.items() if k != "looked"}}
    lines.append(json.dumps(bad_end))  # the last line: a missing field
    path = tmp_path / "broken.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    p = run_cli("summarize", path, "--json")
    assert p.returncode == 1  # some input could not be read: the convention of every command
    assert "Traceback" not in p.stderr
    warnings = p.stderr.strip().splitlines()
    assert len(warnings) == 3, p.stderr
    assert warnings[0].startswith(f"warning: {path}:5: not JSON")
    assert warnings[1].startswith(f"warning: {path}:9: not JSON")
    assert warnings[2] == f"warning: {path}:{len(lines)}: missing field 'after.looked'"
    doc = json.loads(p.stdout)
    assert doc["bad_lines"] == 3 and doc["visits"] == 6 and doc["duplicates"] == 0
    check_buckets(doc["buckets"], HOURLY)


def test_missing_file_is_one_line(tmp_path):
    msg = one_error_line(run_cli("summarize", write_day(tmp_path / "day.jsonl"), tmp_path / "nope.jsonl"))
    assert "nope.jsonl" in msg and "No such file" in msg
    msg = one_error_line(run_cli("summarize", tmp_path))  # a folder
    assert str(tmp_path) in msg


def test_no_finished_visit_is_one_line(tmp_path):
    path = tmp_path / "open.jsonl"
    path.write_text("".join(line + "\n" for line in lines_of(A)[:2]))  # "new" and "update" only
    assert "no finished visit" in one_error_line(run_cli("summarize", path))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "no finished visit" in one_error_line(run_cli("summarize", empty))
    msg = one_error_line(run_cli("summarize", write_day(tmp_path / "day.jsonl"), "--camera", "garage"))
    assert "garage" in msg and "door, kiosk" in msg  # says which cameras there are


def test_bad_usage_is_one_line(tmp_path):
    day = write_day(tmp_path / "day.jsonl")
    p = run_cli("summarize", day, "--by", "week")
    assert "--by must be one of hour, day" in one_error_line(p) and p.returncode == 2
    assert "choose one of --csv and --json" in one_error_line(run_cli("summarize", day, "--csv", "--json"))
    msg = one_error_line(run_cli("summarize", day, "--plot", tmp_path / "no-such-folder" / "x.png"))
    assert "no-such-folder" in msg and "does not exist" in msg


def test_plot_without_matplotlib_names_the_extra(tmp_path):
    """What a user without the extra sees: `import matplotlib` fails (a None in sys.modules is how Python
    spells 'cannot be imported'); the rest of the command is the real one."""
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv = ['dfer-edge'] + sys.argv[1:]; "
            "from dfer_edge.cli import main; main()")
    p = subprocess.run([sys.executable, "-c", code, "summarize", str(write_day(tmp_path / "day.jsonl")), "--plot",
                        str(tmp_path / "x.png")], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
    assert "pip install 'dfer-edge[plot]'" in one_error_line(p)
    assert not (tmp_path / "x.png").exists()


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed: pip install 'dfer-edge[plot]' (make test "
                        "installs it)")
    out = tmp_path / "chart.png"
    p = run_cli("summarize", write_day(tmp_path / "day.jsonl"), "--by", "day", "--plot", out)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("day (UTC)")  # the table still comes
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < len(data) < 150_000
    assert png_size(out) == (1000, 520)


# --- the committed example -----------------------------------------------------------------------------


def test_committed_example_summarises_cleanly():
    p = run_cli("summarize", EXAMPLE, "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    doc = json.loads(p.stdout)
    assert doc["bad_lines"] == 0 and doc["duplicates"] == 0 and 250 <= doc["visits"] <= 350
    hours = {b["bucket"][11:13]: b["visits"] for b in doc["buckets"]}
    assert set(hours) == {f"{h:02d}" for h in range(9, 18)}  # open 09:00-18:00
    assert max(hours, key=hours.get) in ("12", "13")  # the lunch crowd
    assert 2 <= doc["total"]["median_dwell_s"] <= 20
    lines = [json.loads(x) for x in EXAMPLE.read_text().splitlines()]
    assert {e["type"] for e in lines} == {"new", "update", "end"}
    assert {e["after"]["camera"] for e in lines} == {"lobby"}


def test_committed_example_is_what_the_generator_writes(tmp_path):
    """The file in docs/ is reproducible: `make kiosk-summary` gives the same bytes (fixed seed)."""
    out = tmp_path / "events.jsonl"
    subprocess.run([sys.executable, str(REPO / "docs" / "examples" / "make_events.py"), str(out)], cwd=REPO,
                   check=True, capture_output=True, timeout=TIMEOUT)
    assert out.read_bytes() == EXAMPLE.read_bytes()


def test_committed_picture_fits_the_readme():
    data = PICTURE.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150_000
    assert png_size(PICTURE) == (1000, 520)
