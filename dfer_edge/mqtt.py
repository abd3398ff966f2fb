"""Kiosk analytics over MQTT, in the conventions Frigate and Home Assistant users already know.

`dfer-edge watch --mqtt URL` hands visit events and the live state (how many faces, which expression)
to an `MqttPublisher`, which sends them to a broker under one topic prefix (default `dfer-edge`):

    P/available        online | offline (retained; `offline` is also the broker-held last will)
    P/C/events         {"type": "new"|"update"|"end", "before": ..., "after": ...} as JSON (QoS 1)
    P/C/faces          number of faces now (retained)
    P/C/expression     dominant expression of the people present, or `none` (retained)
    P/C/last_visit     the `after` of the last visit that ended, as JSON (retained)
    P/stats            run statistics as JSON (retained)

where C is the camera name. Home Assistant finds the kiosk by MQTT discovery: retained configs under
`homeassistant/sensor/<node_id>/{faces,expression,last_visit_dwell}/config` and
`homeassistant/binary_sensor/<node_id>/occupancy/config`, sent on every (re)connect and again whenever
Home Assistant announces itself on `homeassistant/status`.

The camera loop must never wait for the network: the client connects and reconnects on paho's own
thread, every publishing method returns at once, and while the broker is away events wait in a bounded
queue (the oldest dropped first, counted) and the latest state is kept to be sent when it is back. A lost
or refused connection is one warning line, and its return one more, not a line per message.

paho-mqtt is an optional extra (`pip install 'dfer-edge[mqtt]'`): importing this module does not need
it, constructing a publisher does.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlsplit

from .errors import DferError
from .labels import LABELS

PASSWORD_ENV = "DFER_MQTT_PASSWORD"  # the password never goes in the URL (shell history, `ps`, logs)
DEFAULT_PREFIX = "dfer-edge"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
INSTALL = "pip install 'dfer-edge[mqtt]'"
EVENT_TYPES = ("new", "update", "end")
NOBODY = "none"  # the expression topic's value when nobody is in front of the camera

# paho retries with exponential backoff between these (seconds): quick after a broker restart, and not
# hammering a broker that is away for hours.
RECONNECT_DELAY = (1, 30)
KEEPALIVE_S = 30  # a silently dead connection (Wi-Fi gone) is noticed after 1.5 x this
CLOSE_TIMEOUT_S = 2.0

_TOPIC_SEGMENT_BAD = re.compile(r"[+#\x00]")
_NODE_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")  # Home Assistant's allowed characters in node and object ids


class MqttError(DferError):
    """An MQTT URL or setting that cannot work; the message is one line for the user."""


# --- the broker address ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MqttTarget:
    """Where to publish: a broker and the topic prefix everything goes under. The password comes from
    the environment, never from the URL, and is kept out of repr so it cannot end up in a log."""

    host: str
    port: int
    tls: bool = False
    prefix: str = DEFAULT_PREFIX
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The URL as a user would write it (no password), for messages."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.prefix}"


def check_camera(camera: str) -> str:
    """A camera name: one MQTT topic level (and part of every visit id), so not empty and without `/`, `+`,
    `#` or control characters. `watch` checks it before any work, with or without MQTT."""
    if not camera or "/" in camera or _TOPIC_SEGMENT_BAD.search(camera) or not camera.isprintable():
        raise MqttError(f"camera name `{camera}`: it is one MQTT topic level, so it may not be empty "
                        "or contain `/`, `+`, `#` or control characters")
    return camera


def _check_topic_path(path: str, what: str, source: str) -> str:
    """A topic prefix: segments separated by '/', none empty and none with MQTT wildcards, since a
    prefix like `a//b` or `kiosk/#` would publish where nobody subscribes (or not be allowed at all)."""
    segments = path.split("/")
    if any(not s for s in segments):
        raise MqttError(f"{source}: the {what} `{path}` has an empty segment (write e.g. `site/kiosk`)")
    if any(_TOPIC_SEGMENT_BAD.search(s) for s in segments):
        raise MqttError(f"{source}: the {what} `{path}` may not contain `+`, `#` or NUL")
    return path


def parse_url(url: str, environ: Mapping[str, str] | None = None) -> MqttTarget:
    """`mqtt://[user@]host[:port][/prefix]` or `mqtts://...` (TLS) -> MqttTarget. Ports default to 1883
    and 8883, the prefix to `dfer-edge`. The password is read from $DFER_MQTT_PASSWORD (in `environ`,
    default os.environ); a URL that carries one is refused so that it is not left in shell histories,
    process lists and service files."""
    env = os.environ if environ is None else environ
    s = url.strip()
    try:
        parts = urlsplit(s)
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as e:
        raise MqttError(f"{url}: not an MQTT URL ({e}); write mqtt://[user@]host[:port][/prefix]") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise MqttError(f"{url}: not an MQTT URL; write mqtt://[user@]host[:port][/prefix] "
                        "(or mqtts:// for TLS)")
    if parts.password is not None:  # `user:secret@` and also `user:@`
        raise MqttError(f"{url.split('@')[-1]}: a password in the MQTT URL is refused (it would show in "
                        f"shell history and process lists); put it in the {PASSWORD_ENV} environment variable")
    host = parts.hostname
    if not host:
        raise MqttError(f"{url}: no broker host; write mqtt://[user@]host[:port][/prefix]")
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise MqttError(f"{url}: bad port; write a number from 1 to 65535 after the host")
    if "?" in s or "#" in s:  # also an empty `?`/`#`, which urlsplit drops: `#` is a wildcard in MQTT
        raise MqttError(f"{url}: an MQTT URL takes no `?` or `#` (the topic prefix is the path, without wildcards)")
    path = unquote(parts.path)
    prefix = DEFAULT_PREFIX if path in ("", "/") else _check_topic_path(path[1:], "topic prefix", url)
    username = unquote(parts.username) if parts.username else None
    password = env.get(PASSWORD_ENV) or None
    if password is not None and username is None:
        raise MqttError(f"{url}: {PASSWORD_ENV} is set but the URL names no user; write "
                        f"{scheme}://USER@{parts.netloc}{parts.path}")
    return MqttTarget(host=host, port=port or DEFAULT_PORTS[scheme], tls=scheme == "mqtts", prefix=prefix,
                      username=username, password=password)


# --- the publisher --------------------------------------------------------------------------------

def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _import_paho() -> Any:
    """paho.mqtt.client, or a one-line error saying how to get it (it is an optional extra)."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise MqttError(f"publishing to MQTT needs paho-mqtt: {INSTALL}") from None
    if not hasattr(mqtt, "CallbackAPIVersion"):  # paho 1.x: other callback signatures
        raise MqttError(f"publishing to MQTT needs paho-mqtt 2.0 or newer: {INSTALL}")
    return mqtt


def _client_class(mqtt: Any) -> type:
    """paho's Client that remembers why its last connection attempt failed: paho's on_connect_fail
    does not say, and "connection refused" and "name not known" call for different fixes."""

    class Client(mqtt.Client):  # type: ignore[misc, valid-type, name-defined]
        last_error: str = ""

        def reconnect(self) -> Any:
            try:
                return super().reconnect()
            except OSError as e:
                self.last_error = e.strerror or str(e) or type(e).__name__
                raise

    return Client


class MqttPublisher:
    """Publishes one camera's analytics to one broker; see the module docstring for the topics.

    Every method returns at once whether or not the broker is there; `warn` gets a line when the
    connection is lost or refused and one when it is back (it is called on paho's network thread).
    While disconnected, events wait in a queue of `queue_size` (the oldest dropped first; `dropped`
    counts them) and only the latest faces, expression, last visit and stats are kept: a state that
    was superseded while the broker was away is not worth sending."""

    def __init__(self, target: MqttTarget, camera: str = "default", discovery_prefix: str = "homeassistant",
                 warn: Callable[[str], None] | None = None, queue_size: int = 1000,
                 client_id: str | None = None, reconnect_delay: tuple[float, float] = RECONNECT_DELAY) -> None:
        check_camera(camera)
        _check_topic_path(discovery_prefix, "discovery prefix", "MQTT")
        if queue_size < 1:
            raise MqttError(f"MQTT queue size {queue_size}: must be at least 1")
        mqtt = _import_paho()
        self.target = target
        self.camera = camera
        self.discovery_prefix = discovery_prefix
        self.queue_size = queue_size
        self._warn = warn if warn is not None else _warn_stderr
        p, c = target.prefix, camera
        self.topic_available = f"{p}/available"
        self.topic_events = f"{p}/{c}/events"
        self.topic_faces = f"{p}/{c}/faces"
        self.topic_expression = f"{p}/{c}/expression"
        self.topic_last_visit = f"{p}/{c}/last_visit"
        self.topic_stats = f"{p}/stats"
        self.topic_ha_status = f"{discovery_prefix}/status"
        # One Home Assistant device per prefix and camera, so two kiosks on one broker stay apart.
        self.node_id = _NODE_ID_BAD.sub("_", f"{p}_{c}")

        self._lock = threading.Lock()  # guards everything below; never held by paho when it calls us back
        self._queue: deque[tuple[str, str]] = deque(maxlen=queue_size)  # events waiting for the broker
        # The retained state as it should be on the broker. It starts at "nobody": a previous run that died
        # with people in front of the camera must not leave its count standing.
        self._state: dict[str, str] = {self.topic_faces: "0", self.topic_expression: NOBODY}
        self._connected = False
        self._down = False  # a "lost"/"cannot connect" line was given and no "connected again" yet
        self._closing = False
        self._closed = False
        self._dropped = 0
        self._dropped_while_down = 0

        self._mqtt = mqtt
        cid = client_id or f"dfer-edge-{self.node_id}-{uuid.uuid4().hex[:8]}"  # unique: no session takeovers
        client = _client_class(mqtt)(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                                     protocol=mqtt.MQTTv311, clean_session=True)
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set()  # the system's CA certificates, host name checked
        client.will_set(self.topic_available, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*reconnect_delay)
        # paho's own queue holds what was handed over while connected and not yet acknowledged; bounded
        # too, with room for the queue drained into it on reconnect plus the discovery configs.
        client.max_queued_messages_set(queue_size + 64)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect_async(target.host, target.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as e:  # e.g. a host name paho refuses outright
            raise MqttError(f"MQTT broker {target.url}: {e}") from None
        client.loop_start()

    # -- what the caller uses --

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full while the broker was away (or paho's was full)."""
        return self._dropped

    def publish_event(self, event: Mapping[str, Any]) -> None:
        """A visit event, as JSON on P/C/events (QoS 1, not retained: each event happens once). An `end`
        event also becomes the retained last visit, which Home Assistant's dwell sensor reads."""
        kind = event.get("type")
        if kind not in EVENT_TYPES:
            raise ValueError(f"event type {kind!r}: expected one of {', '.join(EVENT_TYPES)}")
        payload = json.dumps(event, separators=(",", ":"))
        with self._lock:
            if self._closed:
                return
            if self._connected:
                self._hand_over(self.topic_events, payload, qos=1, retain=False)
            else:
                if len(self._queue) == self._queue.maxlen:
                    self._dropped += 1
                    self._dropped_while_down += 1
                self._queue.append((self.topic_events, payload))
        after = event.get("after")
        if kind == "end" and isinstance(after, Mapping):
            self._set_state(self.topic_last_visit, json.dumps(after, separators=(",", ":")), qos=1)

    def publish_faces(self, count: int) -> None:
        """How many faces are in view now (retained). Only changes go out: the loop may call this every
        frame without flooding the broker."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"face count {count!r}: expected a whole number >= 0")
        self._set_state(self.topic_faces, str(count))

    def publish_expression(self, label: str | None) -> None:
        """The dominant expression of the people present, one of LABELS, or None (sent as `none`) when
        nobody is there (retained; only changes go out)."""
        if label is not None and label not in LABELS:
            raise ValueError(f"expression {label!r}: expected one of {', '.join(LABELS)} or None")
        self._set_state(self.topic_expression, label or NOBODY)

    def publish_stats(self, stats: Mapping[str, Any]) -> None:
        """Run statistics (fps, frames, visits so far...) as JSON on P/stats (retained)."""
        self._set_state(self.topic_stats, json.dumps(dict(stats), separators=(",", ":")))

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Say `offline`, give what is still queued up to `timeout` seconds to reach the broker, then
        disconnect cleanly (so the broker does not send the last will) and stop the network thread.
        Waits only while something is left to send: with the broker away and nothing queued it returns
        at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # later publishing calls are ignored: the run is over
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # a broker that is reconnecting gets the queue on connect
            with self._lock:
                if self._connected or not self._queue:
                    break
            time.sleep(0.02)
        with self._lock:
            self._closing = True
            connected, left = self._connected, len(self._queue)
            info = self._client.publish(self.topic_available, "offline", qos=1, retain=True) if connected else None
        # QoS 1 messages go out in order, so the broker acknowledging `offline` means the events before
        # it arrived too.
        if info is not None and info.rc == self._mqtt.MQTT_ERR_SUCCESS:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
            if not info.is_published():
                self._warn(f"MQTT broker {self.target.url}: did not confirm the last messages within {timeout:g} s")
        elif left:
            self._warn(f"MQTT broker {self.target.url}: not connected; {left} queued event"
                       f"{'s' if left != 1 else ''} not sent")
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Home Assistant discovery --

    def discovery_configs(self) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config for each entity. The dwell sensor reads the last ended visit rather
        than counting visits "today": a day's boundary depends on a time zone and a count would restart
        with the process, while a visit's dwell is a fact the event itself carries (Home Assistant's
        statistics then give visits per day and mean dwell)."""
        from . import __version__

        device = {"identifiers": [self.node_id], "name": f"dfer-edge {self.camera}", "manufacturer": "dfer-edge",
                  "model": "kiosk expression analytics", "sw_version": __version__}
        common = {"availability_topic": self.topic_available, "payload_available": "online",
                  "payload_not_available": "offline", "device": device,
                  "origin": {"name": "dfer-edge", "sw_version": __version__}}
        entities: dict[tuple[str, str], dict[str, Any]] = {
            ("sensor", "faces"): {"name": "Faces", "state_topic": self.topic_faces, "icon": "mdi:account-multiple",
                                  "unit_of_measurement": "faces", "state_class": "measurement"},
            ("sensor", "expression"): {"name": "Expression", "state_topic": self.topic_expression,
                                       "icon": "mdi:emoticon-outline", "device_class": "enum",
                                       "options": [*LABELS, NOBODY]},
            ("sensor", "last_visit_dwell"): {"name": "Last visit dwell", "state_topic": self.topic_last_visit,
                                             "value_template": "{{ value_json.dwell_s }}",
                                             "json_attributes_topic": self.topic_last_visit,
                                             "device_class": "duration", "unit_of_measurement": "s",
                                             "state_class": "measurement", "icon": "mdi:timer-outline"},
            ("binary_sensor", "occupancy"): {"name": "Occupancy", "state_topic": self.topic_faces,
                                             "value_template": "{{ 'ON' if value | int(0) > 0 else 'OFF' }}",
                                             "device_class": "occupancy"},
        }
        return {f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config":
                {**config, "unique_id": f"{self.node_id}_{object_id}", **common}
                for (component, object_id), config in entities.items()}

    # -- internals (paho's callbacks run on its network thread) --

    def _hand_over(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        """To paho, which sends it from its thread; called with the lock held, while connected."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self._dropped += 1

    def _set_state(self, topic: str, payload: str, qos: int = 0) -> None:
        with self._lock:
            if self._closed or self._state.get(topic) == payload:
                return
            self._state[topic] = payload
            if self._connected:
                self._hand_over(topic, payload, qos=qos, retain=True)

    def _send_discovery(self) -> None:
        for topic, config in self.discovery_configs().items():
            self._client.publish(topic, json.dumps(config, separators=(",", ":")), qos=1, retain=True)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:  # refused (bad user or password, not authorised): paho retries with backoff
            self._went_down(f"refused the connection ({reason})")
            return
        try:
            with self._lock:
                client.publish(self.topic_available, "online", qos=1, retain=True)
                client.subscribe(self.topic_ha_status, qos=1)
                self._send_discovery()
                for topic, payload in self._state.items():
                    client.publish(topic, payload, qos=1 if topic == self.topic_last_visit else 0, retain=True)
                sent = len(self._queue)
                while self._queue:
                    self._hand_over(*self._queue.popleft(), qos=1, retain=False)
                self._connected = True
                was_down, self._down = self._down, False
                dropped, self._dropped_while_down = self._dropped_while_down, 0
            if was_down:
                note = f"; {dropped} dropped (queue of {self.queue_size} full)" if dropped else ""
                self._warn(f"MQTT broker {self.target.url}: connected again, sent {sent} queued "
                           f"event{'s' if sent != 1 else ''}{note}")
        except Exception as e:  # noqa: BLE001 - an exception here would end paho's thread for good
            self._warn(f"MQTT broker {self.target.url}: error after connecting ({type(e).__name__}: {e})")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._went_down(f"cannot connect ({getattr(client, 'last_error', '') or 'no answer'})")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
            closing = self._closing
        if was_connected and not closing:
            # MQTT 3.1.1 gives no reason for a dropped connection: paho's "Unspecified error" says nothing.
            code = getattr(reason, "value", reason)
            self._went_down("connection lost" + ("" if code in (0, 128) else f" ({reason})"))

    def _went_down(self, why: str) -> None:
        """One line per outage, however many attempts paho makes before the broker is back."""
        with self._lock:
            if self._down or self._closing:
                return
            self._down = True
        self._warn(f"MQTT broker {self.target.url}: {why}; retrying in the background, "
                   f"keeping up to {self.queue_size} events meanwhile")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """Home Assistant announces `online` on its status topic when it starts; it forgets entities
        whose config it has not seen since, so they are sent again."""
        if message.topic == self.topic_ha_status and message.payload == b"online":
            try:
                with self._lock:
                    if self._connected and not self._closing:
                        self._send_discovery()
            except Exception as e:  # noqa: BLE001 - see _on_connect
                self._warn(f"MQTT broker {self.target.url}: could not resend discovery ({type(e).__name__}: {e})")
