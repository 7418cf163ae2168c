"""Heartbeats, sd_notify datagrams and the watchdog, on a real datagram socket."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.logs import configure_logging, syslog_priority
from appliance.watchdog import (
    HeartbeatError,
    Heartbeats,
    Notifier,
    Watchdog,
    watchdog_interval_s,
)

#: How long a receive waits for a datagram that must come (generous: a loaded CI).
ARRIVES_WITHIN_S = 10.0


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and its NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(ARRIVES_WITHIN_S)
    yield server, str(path)
    server.close()


def _receive(server: socket.socket) -> dict[str, str]:
    message = server.recv(4096).decode()
    return dict(line.split("=", 1) for line in message.split("\n"))


def _drain(server: socket.socket) -> list[dict[str, str]]:
    """Return every datagram already waiting, without blocking."""
    messages = []
    server.setblocking(False)
    try:
        while True:
            messages.append(_receive(server))
    except BlockingIOError:
        pass
    finally:
        server.settimeout(ARRIVES_WITHIN_S)
    return messages


def test_ready_arrives_on_the_notify_socket(notify_socket):
    server, name = notify_socket
    with Notifier(environ={"NOTIFY_SOCKET": name}) as notifier:
        assert notifier.ready("cameras, model and database up")
        assert _receive(server) == {
            "READY": "1",
            "STATUS": "cameras, model and database up",
        }
        assert notifier.stopping()
        assert _receive(server) == {"STOPPING": "1"}


def test_abstract_socket_is_reached_through_its_at_sign():
    name = f"seedqa-test-{secrets.token_hex(6)}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(b"\0" + name.encode())
    server.settimeout(ARRIVES_WITHIN_S)
    try:
        with Notifier(environ={"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.status("warming up")
            assert _receive(server) == {"STATUS": "warming up"}
    finally:
        server.close()


def test_notifier_without_notify_socket_sends_nothing():
    notifier = Notifier(environ={})

    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_notifier_rejects_a_relative_socket_name():
    with pytest.raises(ValueError, match="absolute path or start with '@'"):
        Notifier(environ={"NOTIFY_SOCKET": "run/notify"})


def test_lost_manager_is_a_warning_not_a_crash(tmp_path, caplog):
    with (
        Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier,
        caplog.at_level(logging.WARNING, logger="appliance.watchdog"),
    ):
        assert notifier.watchdog() is False
    assert "cannot notify the service manager" in caplog.text


def test_heartbeat_goes_stale_after_its_allowance():
    now = [100.0]
    beats = Heartbeats(clock=lambda: now[0])
    beats.register("camera", max_age_s=2.0)
    beats.register("pipeline", max_age_s=10.0)

    now[0] += 3.0
    assert beats.stale() == ["camera"]
    beats.beat("camera")
    assert beats.stale() == []
    now[0] += 11.0
    assert beats.stale() == ["camera", "pipeline"]
    beats.unregister("pipeline")
    assert beats.stale() == ["camera"]


def test_beat_of_an_unknown_worker_names_the_registered_ones():
    beats = Heartbeats()
    beats.register("camera", max_age_s=1.0)

    with pytest.raises(HeartbeatError, match="'store'.*registered: camera"):
        beats.beat("store")
    with pytest.raises(HeartbeatError, match="must be positive"):
        beats.register("store", max_age_s=0)


def test_heartbeats_from_many_threads_are_all_kept():
    beats = Heartbeats()
    names = [f"worker-{i}" for i in range(8)]
    for name in names:
        beats.register(name, max_age_s=60.0)

    def work(name: str) -> None:
        for _ in range(2000):
            beats.beat(name)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(beats.ages()) == names
    assert beats.stale() == []


def test_interval_is_half_the_watchdog_period():
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({}) is None
    with pytest.raises(ValueError, match="positive number of microseconds"):
        watchdog_interval_s({"WATCHDOG_USEC": "soon"})
    beats = Heartbeats()
    assert Watchdog.from_environment(beats, Notifier(environ={}), environ={}) is None


def test_pings_come_every_half_period_and_stop_when_a_worker_stalls(notify_socket):
    """Simulated time: the camera beats until t=10 s, then hangs."""
    server, name = notify_socket
    period_usec = 2_000_000
    environ = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": str(period_usec)}
    now = [0.0]
    beats = Heartbeats(clock=lambda: now[0])
    beats.register("camera", max_age_s=1.5)
    ping_times: list[float] = []
    statuses: list[tuple[float, str]] = []

    def wait(seconds: float) -> bool:
        for message in _drain(server):
            if "WATCHDOG" in message:
                ping_times.append(now[0])
            if "STATUS" in message:
                statuses.append((now[0], message["STATUS"]))
        # The camera beats every 0.25 s until it hangs at 10 s.
        step = 0.25
        elapsed = 0.0
        while elapsed < seconds:
            now[0] += step
            elapsed += step
            if now[0] <= 10.0:
                beats.beat("camera")
        return now[0] >= 20.0

    with Notifier(environ=environ) as notifier:
        dog = Watchdog.from_environment(beats, notifier, environ=environ)
        assert dog is not None
        dog._wait = wait  # drive the real loop with simulated time
        dog.run()

    assert dog.interval_s == period_usec / 2e6
    gaps = [b - a for a, b in zip(ping_times, ping_times[1:], strict=False)]
    assert ping_times[0] == 0.0
    assert gaps and max(gaps) <= period_usec / 2e6
    # Stale from 11.5 s: the last ping is the check at 11 s, none after.
    assert ping_times[-1] == 11.0
    assert statuses == [(12.0, "stalled: camera")]
    assert dog.pings == len(ping_times)


def test_real_watchdog_thread_pings_then_withholds_while_stalled(notify_socket):
    server, name = notify_socket
    environ = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"}  # pings every 0.2 s
    beats = Heartbeats()
    # Generous, so a busy test machine does not stall the worker by itself.
    beats.register("pipeline", max_age_s=1.0)
    healthy = threading.Event()
    healthy.set()
    finished = threading.Event()

    def worker() -> None:
        while not finished.wait(0.02):
            if healthy.is_set():
                beats.beat("pipeline")

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    notifier = Notifier(environ=environ)
    dog = Watchdog.from_environment(beats, notifier, environ=environ)
    assert dog is not None
    dog.start()
    try:
        for _ in range(3):
            assert _receive(server) == {"WATCHDOG": "1"}

        healthy.clear()  # the pipeline hangs
        while (message := _receive(server)) == {"WATCHDOG": "1"}:
            pass
        assert message == {"STATUS": "stalled: pipeline"}
        server.settimeout(1.0)  # five ping intervals
        with pytest.raises(TimeoutError):
            _receive(server)

        healthy.set()  # it recovers: pings resume
        server.settimeout(ARRIVES_WITHIN_S)
        assert _receive(server) == {"STATUS": "running"}
        assert _receive(server) == {"WATCHDOG": "1"}
    finally:
        finished.set()
        dog.stop()
        thread.join()
        notifier.close()
    assert not dog.is_alive()


@contextlib.contextmanager
def bare_root_logger() -> Iterator[logging.Logger]:
    """The root logger without the test runner's handlers, restored afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_journal_stream_gets_syslog_priority_prefixes(tmp_path):
    path = tmp_path / "journal"
    with bare_root_logger(), path.open("w") as stream:
        info = os.fstat(stream.fileno())
        environ = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        configure_logging(logging.DEBUG, stream=stream, environ=environ)
        log = logging.getLogger("seedqa.test")
        log.debug("frame %d", 7)
        log.info("sample %s stored", "S-1")
        log.warning("camera %s timed out, retrying", "TOP-1")
        try:
            raise RuntimeError("pipeline broke")
        except RuntimeError:
            log.exception("sample %s aborted", "S-2")
        stream.flush()

    lines = path.read_text().splitlines()
    assert lines[:4] == [
        "<7>seedqa.test: frame 7",
        "<6>seedqa.test: sample S-1 stored",
        "<4>seedqa.test: camera TOP-1 timed out, retrying",
        "<3>seedqa.test: sample S-2 aborted",
    ]
    assert len(lines) > 4 and all(line.startswith("<3>") for line in lines[4:])
    assert lines[-1] == "<3>RuntimeError: pipeline broke"


def test_other_streams_get_timestamps_not_prefixes(tmp_path):
    path = tmp_path / "console"
    with bare_root_logger(), path.open("w") as stream:
        # JOURNAL_STREAM names another file: this stream was redirected.
        configure_logging(
            logging.INFO, stream=stream, environ={"JOURNAL_STREAM": "1:2"}
        )
        logging.getLogger("seedqa.test").warning("disk %s nearly full", "/data")

    line = path.read_text().strip()
    assert not line.startswith("<")
    assert line.endswith("WARNING seedqa.test: disk /data nearly full")
    assert syslog_priority(logging.CRITICAL) == 2
    assert syslog_priority(25) == 6


def test_logging_set_up_elsewhere_is_left_alone(caplog):
    assert configure_logging(logging.DEBUG) is None


def test_a_started_process_finds_the_socket_in_its_environment(notify_socket):
    """As under systemd: NOTIFY_SOCKET comes from the process environment."""
    server, name = notify_socket
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "NOTIFY_SOCKET": name, "PYTHONPATH": str(repo)}
    code = (
        "from appliance.watchdog import Notifier\n"
        "with Notifier() as n:\n"
        "    assert n.ready('up')\n"
    )

    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)

    assert _receive(server) == {"READY": "1", "STATUS": "up"}
