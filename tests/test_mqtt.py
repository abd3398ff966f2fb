"""The MQTT publisher against a real mosquitto (Debian's, installed by `make test`) that each test starts
on a free local port, and a real paho subscriber: what a Home Assistant or Frigate-style consumer sees.
URL parsing is tested without a broker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dfer_edge import __version__
from dfer_edge.errors import DferError
from dfer_edge.labels import LABELS
from dfer_edge.mqtt import PASSWORD_ENV, MqttPublisher, MqttTarget, parse_url

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/sbin:/usr/bin")
WAIT = 8.0  # s: the longest any single expectation may take (paho's first reconnect comes after 1 s)

EVENT = {"type": "end", "before": None,
         "after": {"id": "kiosk-1796450102120-3", "camera": "kiosk", "start": "2026-12-05T10:15:02.120Z",
                   "end": "2026-12-05T10:15:09.880Z", "dwell_s": 7.76, "looking_s": 5.2, "looked": True,
                   "expressions": {"happiness": 0.61, "neutral": 0.3, "sadness": 0.02, "anger": 0.01,
                                   "disgust": 0.0, "surprise": 0.05, "fear": 0.01},
                   "dominant": "happiness", "frames": 230}}


def event(i: int, kind: str = "update") -> dict[str, Any]:
    after = dict(EVENT["after"], id=f"kiosk-1-{i}", frames=i)
    return {"type": kind, "before": None, "after": after}


def paho():
    return pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed: pip install 'dfer-edge[mqtt]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout: float = WAIT, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# --- a real broker ---------------------------------------------------------------------------------

class Broker:
    """mosquitto on 127.0.0.1:port with a config written in tmp_path; can be killed and started again
    on the same port."""

    def __init__(self, tmp: Path, extra: str = "") -> None:
        self.port = free_port()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        self.log = tmp / f"mosquitto-{self.port}.log"
        anonymous = "false" if "password_file" in extra else "true"
        # As root, mosquitto would become the `mosquitto` user and could not read files in tmp_path.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous {anonymous}\npersistence false\n"
                             f"{user}{extra}")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        end = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited ({self.proc.returncode}): {self.log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > end:
                    raise AssertionError(f"mosquitto did not listen on {self.port}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def make_broker(tmp_path: Path, extra: str = ""):
    if MOSQUITTO is None:
        pytest.skip("the mosquitto broker is not installed (`make test` installs Debian's as root; "
                    "or apt install mosquitto)")
    paho()
    return Broker(tmp_path, extra)


@pytest.fixture
def broker(tmp_path):
    b = make_broker(tmp_path)
    b.start()
    yield b
    b.kill()


@pytest.fixture
def stopped_broker(tmp_path):
    """A broker's port and config, not started: the test starts it."""
    b = make_broker(tmp_path)
    yield b
    b.kill()


@dataclass
class Received:
    topic: str
    payload: str
    retain: bool


@dataclass
class Subscriber:
    """A paho client subscribed to `topics` that records every message."""

    port: int
    topics: tuple[str, ...] = ("#",)
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        mqtt = paho()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe([(t, 1) for t in self.topics])
        self.client.loop_start()
        assert self._subscribed.wait(WAIT), "subscription not acknowledged"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, msg.payload.decode(), bool(msg.retain)))

    def on_any(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, payload: str | None = None, timeout: float = WAIT) -> Received:
        def found():
            return [m for m in self.on(topic) if payload is None or m.payload == payload]
        wait_until(lambda: found(), timeout, f"{topic} = {payload!r}")
        return found()[-1]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers():
    made: list[Subscriber] = []

    def make(port: int, *topics: str) -> Subscriber:
        s = Subscriber(port, topics or ("#",))
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


class Warnings(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def count(self, word: str) -> int:  # type: ignore[override]
        return sum(word in line for line in list(self))


def target(port: int, prefix: str = "dfer-edge", **kw: Any) -> MqttTarget:
    return MqttTarget(host="127.0.0.1", port=port, prefix=prefix, **kw)


@pytest.fixture
def publishers():
    made: list[MqttPublisher] = []

    def make(port: int, **kw: Any) -> MqttPublisher:
        kw.setdefault("camera", "kiosk")
        kw.setdefault("warn", Warnings())
        p = MqttPublisher(target(port, kw.pop("prefix", "dfer-edge")), **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close(timeout=0.5)


# --- URL parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker", MqttTarget("broker", 1883, False, "dfer-edge", None)),
    ("mqtt://broker/", MqttTarget("broker", 1883, False, "dfer-edge", None)),
    ("mqtts://broker", MqttTarget("broker", 8883, True, "dfer-edge", None)),
    ("mqtt://kiosk@broker.lan:1884/shop/entrance", MqttTarget("broker.lan", 1884, False, "shop/entrance", "kiosk")),
    ("mqtts://ha%40home@10.0.0.2:8884/x", MqttTarget("10.0.0.2", 8884, True, "x", "ha@home")),
    ("mqtt://[::1]:1999", MqttTarget("::1", 1999, False, "dfer-edge", None)),
])
def test_parse_url_good(url, expected):
    assert parse_url(url, environ={}) == expected


@pytest.mark.parametrize("url, says", [
    ("http://broker", "not an MQTT URL"),
    ("broker:1883", "not an MQTT URL"),
    ("mqtt://", "no broker host"),
    ("mqtt://:1883", "no broker host"),
    ("mqtt://broker:port", "not an MQTT URL"),
    ("mqtt://broker:70000", "not an MQTT URL"),
    ("mqtt://broker:0", "bad port"),
    ("mqtt://broker:", "bad port"),
    ("mqtt://broker/a//b", "empty segment"),
    ("mqtt://broker/a/", "empty segment"),
    ("mqtt://broker//", "empty segment"),
    ("mqtt://broker/a/+", "may not contain"),
    ("mqtt://broker/a/#", "no `?` or `#`"),
    ("mqtt://broker/a?retain=1", "no `?` or `#`"),
])
def test_parse_url_bad_is_one_line_error(url, says):
    with pytest.raises(DferError) as e:
        parse_url(url, environ={})
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("url", ["mqtt://kiosk:s3cret@broker", "mqtts://kiosk:@broker:8883/p"])
def test_password_in_url_is_refused_and_not_echoed(url):
    with pytest.raises(DferError) as e:
        parse_url(url, environ={PASSWORD_ENV: "other"})
    msg = str(e.value)
    assert PASSWORD_ENV in msg and "s3cret" not in msg and "\n" not in msg


def test_password_comes_from_the_environment_and_stays_out_of_repr():
    t = parse_url("mqtt://kiosk@broker", environ={PASSWORD_ENV: "s3cret"})
    assert (t.username, t.password) == ("kiosk", "s3cret")
    assert "s3cret" not in repr(t) and "s3cret" not in t.url
    assert parse_url("mqtt://kiosk@broker", environ={}).password is None
    with pytest.raises(DferError, match="names no user"):
        parse_url("mqtt://broker", environ={PASSWORD_ENV: "s3cret"})


def test_without_paho_the_publisher_says_how_to_install(monkeypatch):
    for name in ("paho", "paho.mqtt", "paho.mqtt.client"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: the import fails
    with pytest.raises(DferError, match=r"pip install 'dfer-edge\[mqtt\]'"):
        MqttPublisher(target(1883))


def test_bad_camera_name_is_refused():
    paho()
    with pytest.raises(DferError, match="camera name"):
        MqttPublisher(target(1883), camera="a/b")


# --- against the broker ----------------------------------------------------------------------------

def test_online_events_and_retained_state(broker, subscribers, publishers):
    live = subscribers(broker.port)
    warn = Warnings()
    pub = publishers(broker.port, warn=warn)
    online = live.wait_for("dfer-edge/available", "online")
    assert online.retain is False  # delivered live; the retained copy is checked below
    pub.publish_event(EVENT)
    pub.publish_faces(2)
    pub.publish_expression("happiness")
    pub.publish_stats({"fps": 14.8, "frames": 1200, "visits": 3})
    got = json.loads(live.wait_for("dfer-edge/kiosk/events").payload)
    assert got == EVENT
    live.wait_for("dfer-edge/kiosk/faces", "2")
    live.wait_for("dfer-edge/kiosk/expression", "happiness")
    live.wait_for("dfer-edge/stats")
    live.wait_for("dfer-edge/kiosk/last_visit")

    late = subscribers(broker.port)  # connects after everything was published: sees the retained state
    assert late.wait_for("dfer-edge/available").retain and late.on("dfer-edge/available")[-1].payload == "online"
    faces = late.wait_for("dfer-edge/kiosk/faces")
    expression = late.wait_for("dfer-edge/kiosk/expression")
    stats = late.wait_for("dfer-edge/stats")
    last = late.wait_for("dfer-edge/kiosk/last_visit")
    assert (faces.payload, faces.retain) == ("2", True)
    assert (expression.payload, expression.retain) == ("happiness", True)
    assert json.loads(stats.payload) == {"fps": 14.8, "frames": 1200, "visits": 3} and stats.retain
    assert json.loads(last.payload)["dwell_s"] == 7.76 and last.retain
    assert late.on("dfer-edge/kiosk/events") == []  # events are not retained

    pub.publish_expression(None)
    pub.publish_faces(0)
    live.wait_for("dfer-edge/kiosk/expression", "none")
    live.wait_for("dfer-edge/kiosk/faces", "0")
    pub.publish_faces(0)  # unchanged: not sent again
    pub.publish_event(event(1))  # a marker after it
    live.wait_for("dfer-edge/kiosk/events")
    time.sleep(0.1)
    assert [m.payload for m in live.on("dfer-edge/kiosk/faces")].count("0") == 2  # the start's 0, and this 0
    assert warn == []


def test_bad_values_are_refused(broker, publishers):
    pub = publishers(broker.port)
    with pytest.raises(ValueError):
        pub.publish_expression("joy")
    with pytest.raises(ValueError):
        pub.publish_faces(-1)
    with pytest.raises(ValueError):
        pub.publish_event({"type": "begin", "before": None, "after": {}})


REQUIRED = {"unique_id", "name", "state_topic", "availability_topic", "payload_available",
            "payload_not_available", "device"}


def test_discovery_configs_retained_and_resent_on_ha_birth(broker, subscribers, publishers):
    pub = publishers(broker.port, prefix="shop/entrance")
    live = subscribers(broker.port)
    live.wait_for("shop/entrance/available", "online")
    node = "shop_entrance_kiosk"
    topics = {f"homeassistant/sensor/{node}/faces/config", f"homeassistant/sensor/{node}/expression/config",
              f"homeassistant/sensor/{node}/last_visit_dwell/config",
              f"homeassistant/binary_sensor/{node}/occupancy/config"}
    late = subscribers(broker.port, "homeassistant/#")
    for topic in topics:
        msg = late.wait_for(topic)
        assert msg.retain
        config = json.loads(msg.payload)
        assert REQUIRED <= set(config), topic
        assert config["availability_topic"] == "shop/entrance/available"
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
        assert config["device"] == {"identifiers": [node], "name": "dfer-edge kiosk", "manufacturer": "dfer-edge",
                                    "model": "kiosk expression analytics", "sw_version": __version__}
        assert config["unique_id"] == f"{node}_{topic.split('/')[-2]}"
    assert set(m.topic for m in late.on_any() if m.topic.endswith("/config")) == topics
    faces = json.loads(late.on(f"homeassistant/sensor/{node}/faces/config")[-1].payload)
    assert faces["state_topic"] == "shop/entrance/kiosk/faces" and faces["state_class"] == "measurement"
    expression = json.loads(late.on(f"homeassistant/sensor/{node}/expression/config")[-1].payload)
    assert expression["state_topic"] == "shop/entrance/kiosk/expression"
    assert expression["options"] == [*LABELS, "none"] and expression["device_class"] == "enum"
    dwell = json.loads(late.on(f"homeassistant/sensor/{node}/last_visit_dwell/config")[-1].payload)
    assert dwell["unit_of_measurement"] == "s" and dwell["state_topic"] == "shop/entrance/kiosk/last_visit"

    def configs_seen() -> int:
        return len([m for m in live.on_any() if m.topic.endswith("/config")])
    wait_until(lambda: configs_seen() == len(topics), what="the discovery configs")
    live.publish("homeassistant/status", "offline")
    live.publish("homeassistant/status", "online")  # Home Assistant (re)started
    wait_until(lambda: configs_seen() == 2 * len(topics), what="discovery configs sent again")
    assert {m.topic for m in live.on_any()[-len(topics):]} == topics


def test_clean_close_publishes_offline(broker, subscribers, publishers):
    live = subscribers(broker.port, "dfer-edge/#")
    with MqttPublisher(target(broker.port), camera="kiosk") as pub:
        live.wait_for("dfer-edge/available", "online")
        pub.publish_event(EVENT)
    # close() returned, so the broker has acknowledged `offline` (and the event before it): a subscriber
    # that connects now gets it retained
    late = subscribers(broker.port, "dfer-edge/available")
    assert late.wait_for("dfer-edge/available").payload == "offline"
    live.wait_for("dfer-edge/available", "offline")
    assert [m.payload for m in live.on("dfer-edge/available")] == ["online", "offline"]
    assert len(live.on("dfer-edge/kiosk/events")) == 1


def test_last_will_says_offline_when_the_process_is_killed(broker, subscribers, tmp_path):
    live = subscribers(broker.port, "dfer-edge/available")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from dfer_edge.mqtt import MqttPublisher, MqttTarget
        pub = MqttPublisher(MqttTarget("127.0.0.1", {broker.port}), camera="kiosk")
        while not pub.connected:
            time.sleep(0.01)
        print("ready", flush=True)
        time.sleep(60)
    """))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, child.kill)  # a child that never says "ready" must not hang the test
    watchdog.start()
    try:
        assert child.stdout.readline().strip() == "ready"
        live.wait_for("dfer-edge/available", "online")
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        assert live.wait_for("dfer-edge/available", "offline").payload == "offline"
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()


def test_broker_down_at_start_then_up(stopped_broker, subscribers, publishers):
    warn = Warnings()
    t0 = time.monotonic()
    pub = publishers(stopped_broker.port, warn=warn)
    assert time.monotonic() - t0 < 0.5
    wait_until(lambda: warn, what="the warning that the broker cannot be reached")
    assert len(warn) == 1 and "cannot connect" in warn[0] and str(stopped_broker.port) in warn[0]
    t0 = time.monotonic()
    for i in range(5):
        pub.publish_event(event(i))
    pub.publish_faces(3)
    pub.publish_expression("surprise")
    pub.publish_stats({"frames": 5})
    assert time.monotonic() - t0 < 0.1  # nothing waits for the network
    assert not pub.connected

    stopped_broker.start()
    live = subscribers(stopped_broker.port, "dfer-edge/#")
    wait_until(lambda: len(live.on("dfer-edge/kiosk/events")) == 5, what="the queued events")
    assert [json.loads(m.payload)["after"]["frames"] for m in live.on("dfer-edge/kiosk/events")] == list(range(5))
    live.wait_for("dfer-edge/kiosk/faces", "3")
    live.wait_for("dfer-edge/kiosk/expression", "surprise")
    live.wait_for("dfer-edge/available", "online")
    wait_until(lambda: len(warn) == 2, what="the line saying it is connected")
    assert "connected again, sent 5 queued events" in warn[1]


def test_broker_restart_mid_run(broker, subscribers, publishers, tmp_path):
    warn = Warnings()
    pub = publishers(broker.port, warn=warn, queue_size=3)
    before = subscribers(broker.port, "dfer-edge/kiosk/events")
    wait_until(lambda: pub.connected, what="the first connection")
    pub.publish_event(event(0))
    before.wait_for("dfer-edge/kiosk/events")  # acknowledged, so not sent again after the restart
    broker.kill()
    wait_until(lambda: not pub.connected, what="the publisher to notice the broker went away")
    t0 = time.monotonic()
    for i in range(1, 6):  # 5 events into a queue of 3: the 2 oldest are dropped
        pub.publish_event(event(i))
    assert time.monotonic() - t0 < 0.1
    assert pub.dropped == 2
    broker.start()
    live = subscribers(broker.port, "dfer-edge/#")
    wait_until(lambda: len(live.on("dfer-edge/kiosk/events")) == 3, what="the events kept while it was down")
    assert [json.loads(m.payload)["after"]["frames"] for m in live.on("dfer-edge/kiosk/events")] == [3, 4, 5]
    live.wait_for("dfer-edge/available", "online")
    wait_until(lambda: warn.count("connected again") == 1, what="the line saying it is back")
    assert warn.count("connection lost") == 1 and len(warn) == 2, warn
    assert "sent 3 queued events; 2 dropped" in warn[1]


def test_password_from_environment_against_a_broker(tmp_path, subscribers, monkeypatch):
    if MOSQUITTO_PASSWD is None:
        pytest.skip("mosquitto_passwd is not installed")
    pwfile = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(pwfile), "kiosk", "s3cret"], check=True, capture_output=True)
    os.chmod(pwfile, 0o600)
    b = make_broker(tmp_path, f"password_file {pwfile}\n")
    b.start()
    try:
        monkeypatch.setenv(PASSWORD_ENV, "s3cret")
        good = MqttPublisher(parse_url(f"mqtt://kiosk@127.0.0.1:{b.port}"), camera="kiosk", warn=Warnings())
        wait_until(lambda: good.connected, what="a connection with the right password")
        good.close()
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        warn = Warnings()
        bad = MqttPublisher(parse_url(f"mqtt://kiosk@127.0.0.1:{b.port}"), camera="kiosk", warn=warn)
        try:
            wait_until(lambda: warn, what="the refusal warning")
            assert "refused" in warn[0] and not bad.connected
            bad.publish_faces(1)  # still returns at once
        finally:
            bad.close(timeout=0.2)
    finally:
        b.kill()


def test_close_with_the_broker_away_is_short_and_says_what_was_not_sent(stopped_broker):
    warn = Warnings()
    pub = MqttPublisher(target(stopped_broker.port), camera="kiosk", warn=warn)
    wait_until(lambda: warn, what="the warning that the broker cannot be reached")
    pub.publish_event(event(1))
    pub.publish_event(event(2))
    t0 = time.monotonic()
    pub.close(timeout=0.3)
    assert time.monotonic() - t0 < 2.0  # the timeout, and paho's thread noticing the stop (<= 1 s)
    assert len(warn) == 2 and "2 queued events not sent" in warn[1]
    pub.publish_event(event(3))  # after close: ignored, no error
    pub.close()  # twice is harmless


# --- a real `watch --mqtt` ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kiosk_videos(tmp_path_factory):
    """The kiosk scenes (tests/helpers.py) at 10 frames/s (~135 frames) and at 30 (~400: a run of several
    seconds, long enough to kill it or its broker half-way)."""
    from tests.helpers import write_kiosk_video

    folder = tmp_path_factory.mktemp("kiosk")
    short, long = folder / "kiosk-10.mp4", folder / "kiosk-30.mp4"
    write_kiosk_video(short, fps=10)
    write_kiosk_video(long, fps=30)
    return short, long


def watch_cmd(video: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dfer_edge", "watch", str(video), "--mqtt", f"mqtt://127.0.0.1:{port}/shop",
            "--camera", "lobby", *extra]


def test_watch_publishes_every_topic_and_discovery(broker, subscribers, kiosk_videos):
    live = subscribers(broker.port, "shop/#", "homeassistant/#")
    p = subprocess.run(watch_cmd(kiosk_videos[0], broker.port), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    wait_until(lambda: live.on("shop/available") and live.on("shop/available")[-1].payload == "offline",
               what="offline after a clean end")
    assert [m.payload for m in live.on("shop/available")][:1] == ["online"]
    events = [json.loads(m.payload) for m in live.on("shop/lobby/events")]
    assert [e["type"] for e in events if e["type"] != "update"] == ["new", "end", "new", "end"]
    assert {e["after"]["dominant"] for e in events if e["type"] == "end"} == {"happiness", "surprise"}
    # The live state: someone came (1 face) and went (0); the last state is retained for late readers.
    assert "1" in [m.payload for m in live.on("shop/lobby/faces")] and live.on("shop/lobby/faces")[-1].payload == "0"
    assert live.on("shop/lobby/expression")[-1].payload == "none"
    stats = json.loads(live.on("shop/stats")[-1].payload)
    assert stats["visits"] == 2 and stats["run"]["frames"] > 100
    # A late reader gets every discovery config the run published, retained. Its retained messages come per
    # subscription, so the configs may arrive after the shop/ topics: wait for all of them, not for those.
    published = {m.topic for m in live.on_any() if m.topic.startswith("homeassistant/")}
    assert "homeassistant/sensor/shop_lobby/faces/config" in published
    late = subscribers(broker.port, "shop/#", "homeassistant/#")
    late.wait_for("shop/lobby/faces", "0")
    late.wait_for("shop/available", "offline")
    wait_until(lambda: published <= {m.topic for m in late.on_any()}, what="every discovery config, retained")
    configs = {m.topic: json.loads(m.payload) for m in late.on_any() if m.topic.startswith("homeassistant/")}
    assert all(m.retain for m in late.on_any() if m.topic.startswith("homeassistant/"))
    assert "homeassistant/sensor/shop_lobby/faces/config" in configs
    for topic, c in configs.items():
        assert c["availability_topic"] == "shop/available" and c["state_topic"].startswith("shop/lobby/"), topic
        assert c["device"]["name"] == "dfer-edge lobby" and c["unique_id"].startswith("shop_lobby_")


def test_a_killed_watch_leaves_its_last_will(broker, subscribers, kiosk_videos):
    live = subscribers(broker.port, "shop/available")
    proc = subprocess.Popen(watch_cmd(kiosk_videos[1], broker.port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        live.wait_for("shop/available", "online", timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert live.wait_for("shop/available", "offline").payload == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_rides_out_a_broker_restart(broker, subscribers, kiosk_videos):
    """The broker goes away for a second or two half-way through; the camera loop does not stop, says so in
    one line each way, and every event reaches the broker in the end (the queue holds them)."""
    first = subscribers(broker.port, "shop/#")
    proc = subprocess.Popen(watch_cmd(kiosk_videos[1], broker.port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        first.wait_for("shop/available", "online", timeout=60)
        time.sleep(1.0)
        broker.kill()
        time.sleep(1.5)
        broker.start()
        live = subscribers(broker.port, "shop/#")
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert sum("connection lost" in line for line in err.splitlines()) == 1, err
    assert sum("connected again" in line for line in err.splitlines()) == 1, err
    assert "2 visits" in err.splitlines()[-1]
    events = [json.loads(m.payload) for m in first.on("shop/lobby/events") + live.on("shop/lobby/events")]
    ends = {e["after"]["id"] for e in events if e["type"] == "end"}
    news = {e["after"]["id"] for e in events if e["type"] == "new"}
    assert len(ends) == 2 and ends == news
    live.wait_for("shop/available", "offline")


def test_watch_with_no_broker_warns_once_and_keeps_going(kiosk_videos, tmp_path):
    """A refused connection at start is one warning line; the camera loop runs to the end and the events
    file is complete (the events meant for MQTT wait in the bounded queue and are counted as not sent)."""
    if MOSQUITTO is None:
        pytest.skip("the mosquitto broker is not installed (`make test` installs Debian's as root)")
    paho()
    events = tmp_path / "events.jsonl"
    p = subprocess.run(watch_cmd(kiosk_videos[0], free_port(), "--events", str(events)), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert 1 <= len(warnings) <= 2 and "cannot connect" in warnings[0], p.stderr
    assert "Traceback" not in p.stderr and "2 visits" in p.stderr.splitlines()[-1]
    assert sum(json.loads(line)["type"] == "end" for line in events.read_text().splitlines()) == 2
