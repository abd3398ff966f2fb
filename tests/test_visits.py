"""Visits and their events: the bookkeeping on hand-made frame records, then a real `watch` over a video of
people coming, looking, turning away and leaving."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dfer_edge.labels import LABELS
from dfer_edge.visits import VisitOptions, Visits, dominant_expression
from tests.helpers import KIOSK_SCENES, run_cli, write_kiosk_video

VISIT_KEYS = {"id", "camera", "start", "end", "dwell_s", "looking_s", "looked", "expressions", "dominant", "frames"}


def face(fid: int, label: str, looking: bool = True, box=(100, 100, 200, 200), score: float = 0.9) -> dict:
    return {"id": fid, "box": list(box), "label": label, "score": score, "looking": looking,
            "probabilities": {k: float(k == label) for k in LABELS}}


def frames(spec, fps: float = 10.0, t0: float = 0.0):
    """Frame records from [(seconds, [faces])...], one every 1/fps seconds."""
    t, out = t0, []
    for seconds, faces in spec:
        for _ in range(round(seconds * fps)):
            out.append({"frame": len(out), "t": round(t, 4), "detected": True, "faces": faces})
            t += 1 / fps
    return out


def replay(records, options=VisitOptions(camera="lobby"), wall=1_800_000_000.0):
    visits = Visits(options, wall=wall)
    events = [e for r in records for e in visits.frame(r)]
    return events + visits.close(), visits


def test_a_visit_is_new_updated_and_ended_with_time_weighted_shares():
    records = frames([(3.0, [face(0, "happiness")]), (2.0, [face(0, "neutral", looking=False)]), (4.0, [])])
    events, visits = replay(records, VisitOptions(camera="lobby", gone=3.0, update_every=2.0))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "new" and kinds[-1] == "end" and set(kinds[1:-1]) == {"update"} and len(kinds) == 4
    end = events[-1]["after"]
    assert set(end) == VISIT_KEYS and end["camera"] == "lobby" and end["id"].startswith("lobby-")
    # Seen from t=0 to 4.9 s: 49 intervals of 0.1 s; the first 2.9 s happy and looking (the interval up to each
    # frame goes to what that frame shows), the last 2.0 s neutral and turned away.
    assert end["dwell_s"] == pytest.approx(4.9, abs=1e-6) and end["frames"] == 50
    assert end["expressions"]["happiness"] == pytest.approx(2.9 / 4.9, abs=1e-3)
    assert end["expressions"]["neutral"] == pytest.approx(2.0 / 4.9, abs=1e-3)
    assert sum(end["expressions"].values()) == pytest.approx(1.0, abs=1e-3) and list(end["expressions"]) == list(LABELS)
    assert end["dominant"] == "happiness" and end["looking_s"] == pytest.approx(2.9, abs=1e-6) and end["looked"]
    assert end["start"] == "2027-01-15T08:00:00.000Z" and end["end"] == "2027-01-15T08:00:04.900Z"
    # The visit ends once the face has been gone 3 s: at the frame of t = 7.9 s, not at the end of the run.
    assert visits.finished == 1 and not visits.open
    # Each event's `before` is what the previous one said.
    for prev, cur in zip(events, events[1:]):
        assert cur["before"] == prev["after"]
    assert events[0]["before"] is None and events[0]["after"]["end"] is None


def test_a_glimpse_is_no_visit():
    events, visits = replay(frames([(0.3, [face(0, "fear")]), (5.0, [])]))
    assert events == [] and visits.finished == 0


def test_a_face_found_again_nearby_continues_its_visit_and_one_elsewhere_is_new():
    records = frames([(2.0, [face(0, "happiness")]), (1.0, []), (2.0, [face(5, "happiness", box=(110, 105, 212, 207))]),
                      (2.0, [face(5, "happiness", box=(110, 105, 212, 207)), face(6, "anger", box=(400, 100, 500, 200))])])
    events, _ = replay(records)
    ends = [e["after"] for e in events if e["type"] == "end"]
    assert len(ends) == 2
    first = next(v for v in ends if v["dominant"] == "happiness")
    # One visit across the 1-s gap and the new tracker id: seen from 0 to 6.9 s.
    assert first["dwell_s"] == pytest.approx(6.9, abs=1e-6)
    assert next(v for v in ends if v["dominant"] == "anger")["dwell_s"] == pytest.approx(1.9, abs=1e-6)


def test_looked_needs_the_set_seconds_and_no_face_data_leaves():
    records = frames([(0.8, [face(0, "neutral", looking=True)]), (2.0, [face(0, "neutral", looking=False)])])
    events, _ = replay(records, VisitOptions(looked_s=1.0))
    end = events[-1]["after"]
    assert end["looking_s"] == pytest.approx(0.7, abs=1e-6) and not end["looked"]
    text = json.dumps(events)
    assert "box" not in text and "landmarks" not in text and "probabilities" not in text


def test_dominant_expression_of_the_people_present():
    assert dominant_expression([]) is None
    assert dominant_expression([face(0, "happiness"), face(1, "anger"), face(2, "anger", score=0.5)]) == "anger"
    assert dominant_expression([face(0, "happiness", score=0.9), face(1, "anger", score=0.6)]) == "happiness"


# --- a real watch --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kiosk_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("kiosk") / "kiosk.mp4"
    write_kiosk_video(path)
    return path


def test_watch_writes_the_visits_of_a_kiosk_video(kiosk_video, tmp_path):
    out = tmp_path / "events.jsonl"
    p = run_cli("watch", kiosk_video, "--events", out, "--camera", "lobby")
    assert p.returncode == 0, p.stderr
    assert "2 visits" in p.stderr.splitlines()[-1]
    events = [json.loads(line) for line in out.read_text().splitlines()]
    ends = [e["after"] for e in events if e["type"] == "end"]
    assert [e["type"] for e in events].count("new") == 2 and len(ends) == 2
    one, two = sorted(ends, key=lambda v: v["start"])
    # KIOSK_SCENES: visitor one 5 s (2 s happy, 1 s neutral looking on, 2 s in half profile, still happy),
    # gone 4.5 s, visitor two 3 s surprised. Times are source seconds at 10 frames/s; the tracker may take a
    # frame or two to find or lose a face, hence 0.3 s of slack; the half profile must not count as looking.
    assert one["dwell_s"] == pytest.approx(4.9, abs=0.3) and one["dominant"] == "happiness"
    assert one["looking_s"] == pytest.approx(2.9, abs=0.5) and one["looked"]
    assert two["dwell_s"] == pytest.approx(2.9, abs=0.3) and two["dominant"] == "surprise" and two["looked"]
    assert all(set(v) == VISIT_KEYS and v["camera"] == "lobby" for v in ends)
    assert KIOSK_SCENES[4] == (None, 4.5)  # the gap between the visitors is longer than the visit gap (3 s)


def test_events_on_stdout_are_the_only_output(kiosk_video):
    p = run_cli("watch", kiosk_video, "--events", "-", "--max-frames", "40")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines and all(json.loads(line)["type"] in ("new", "update", "end") for line in lines)


@pytest.mark.parametrize("args, says", [
    (["--events", "-", "--jsonl"], "--events -"),
    (["--blur-faces"], "--save"),
    (["--camera", "a/b"], "--camera"),
    (["--events", "/no/such/folder/e.jsonl"], "cannot write"),
    (["--mqtt", "http://broker"], "mqtt"),
])
def test_bad_analytics_settings_are_one_line(kiosk_video, args, says):
    p = run_cli("watch", kiosk_video, *args)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and says in p.stderr


def face_sharpness(image: np.ndarray, box) -> float:
    x1, y1, x2, y2 = box
    return float(cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_blurred_faces_cannot_be_read_in_saved_pictures(kiosk_video, tmp_path):
    """--blur-faces: the face inside its box loses nearly all its detail (a Laplacian variance under a tenth
    of the sharp copy's), in predict's annotated copies and in watch's saved video."""
    photo = tmp_path / "face.png"
    cap = cv2.VideoCapture(str(kiosk_video))
    for _ in range(15):
        ok, frame = cap.read()
    assert ok
    cv2.imwrite(str(photo), frame)
    sharp, blurred = tmp_path / "sharp", tmp_path / "blurred"
    a = run_cli("predict", photo, "--annotate", sharp, "--json")
    b = run_cli("predict", photo, "--annotate", blurred, "--blur-faces", "--json")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    box = json.loads(a.stdout)[0]["faces"][0]["box"]
    inner = (box[0] + 10, box[1] + 10, box[2] - 10, box[3] - 10)  # inside the drawn frame and label
    s, bl = (face_sharpness(cv2.imread(str(d / "face.jpg")), inner) for d in (sharp, blurred))
    assert bl < 0.1 * s, (s, bl)
    assert json.loads(a.stdout) == json.loads(b.stdout)  # the answers do not change

    video = tmp_path / "saved.mp4"
    w = run_cli("watch", kiosk_video, "--save", video, "--blur-faces", "--max-frames", "20", "--jsonl")
    assert w.returncode == 0, w.stderr
    record = [json.loads(line) for line in w.stdout.splitlines()][-1]
    cap = cv2.VideoCapture(str(video))
    for _ in range(20):
        ok, saved = cap.read()
    assert ok and record["faces"]
    b = record["faces"][0]["box"]
    assert face_sharpness(saved, (b[0] + 10, b[1] + 10, b[2] - 10, b[3] - 10)) < 0.1 * face_sharpness(frame, inner)
