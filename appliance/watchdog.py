"""Telling systemd the app is alive: worker heartbeats, sd_notify and a watchdog.

The operator app runs as a ``Type=notify`` service with ``WatchdogSec=``. Each of
its workers (camera, pipeline, store) registers a heartbeat and beats it as it
works; a `Watchdog` thread pings systemd with ``WATCHDOG=1`` only while no
heartbeat is older than its allowance, so a hung camera or pipeline stops the pings
and systemd restarts the service.

The notifications are datagrams in the sd_notify protocol, ``KEY=VALUE`` lines sent
to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` names an
abstract socket). Without that variable every notification is a no-op, so the app
runs unchanged outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


class HeartbeatError(KeyError):
    """A heartbeat is used before it is registered, or registered badly."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class _Heartbeat:
    max_age_s: float
    last_s: float


class Heartbeats:
    """The heartbeats of the app's workers, each with the age it may reach.

    Parameters
    ----------
    clock : callable, optional
        Monotonic time in seconds; `time.monotonic` by default.

    Examples
    --------
    >>> beats = Heartbeats()
    >>> beats.register("camera", max_age_s=10.0)
    >>> beats.beat("camera")
    >>> beats.stale()
    []
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._beats: dict[str, _Heartbeat] = {}

    def register(self, name: str, max_age_s: float) -> None:
        """Add a worker's heartbeat, fresh from now.

        Registering a name again replaces its allowance and counts as a beat.

        Parameters
        ----------
        name : str
            The worker, as it is named in logs (``camera``, ``pipeline``).
        max_age_s : float
            Seconds the worker may go without a beat before it counts as stalled.

        Raises
        ------
        HeartbeatError
            If `max_age_s` is not a positive number.
        """
        if not max_age_s > 0:
            raise HeartbeatError(
                f"heartbeat {name!r}: max_age_s must be positive seconds, got "
                f"{max_age_s!r}"
            )
        with self._lock:
            self._beats[name] = _Heartbeat(float(max_age_s), self._clock())
        log.debug("heartbeat %s registered, stale after %.1f s", name, max_age_s)

    def unregister(self, name: str) -> None:
        """Remove a worker's heartbeat, as when the worker ends on purpose."""
        with self._lock:
            self._beats.pop(name, None)

    def beat(self, name: str) -> None:
        """Record that worker `name` is alive now.

        Cheap (a lock and a clock read) and safe from any thread.

        Raises
        ------
        HeartbeatError
            If `name` was never registered.
        """
        now = self._clock()
        with self._lock:
            entry = self._beats.get(name)
            if entry is None:
                raise HeartbeatError(
                    f"no heartbeat called {name!r}; register it first (registered: "
                    f"{', '.join(sorted(self._beats)) or 'none'})"
                )
            self._beats[name] = _Heartbeat(entry.max_age_s, now)

    def stale(self) -> list[str]:
        """Return the names of the workers whose last beat is too old, sorted."""
        now = self._clock()
        with self._lock:
            return sorted(
                name
                for name, entry in self._beats.items()
                if now - entry.last_s > entry.max_age_s
            )

    def ages(self) -> dict[str, float]:
        """Return each worker's seconds since its last beat."""
        now = self._clock()
        with self._lock:
            return {name: now - entry.last_s for name, entry in self._beats.items()}


def _socket_address(name: str) -> str | bytes:
    """Return the `socket` address for a ``$NOTIFY_SOCKET`` value."""
    if name.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the "@".
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Send sd_notify messages to the service manager.

    Parameters
    ----------
    environ : mapping, optional
        Where to read ``NOTIFY_SOCKET``; `os.environ` by default.

    Notes
    -----
    A send that fails (the manager went away, a full socket buffer) is logged as a
    warning and otherwise ignored: the app must not fall over because a
    notification was lost, and the watchdog restarts it if pings stay missing.
    """

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address: str | bytes | None = None
        name = env.get("NOTIFY_SOCKET", "")
        if name:
            if not name.startswith(("/", "@")):
                raise ValueError(
                    f"NOTIFY_SOCKET must be an absolute path or start with '@' "
                    f"(abstract socket), got {name!r}"
                )
            self._address = _socket_address(name)
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening (``$NOTIFY_SOCKET`` is set)."""
        return self._address is not None

    def notify(self, **fields: str) -> bool:
        """Send one message of ``KEY=VALUE`` lines; return whether it was sent.

        Keys are given in lower case and sent in upper case:
        ``notify(status="warming up")`` sends ``STATUS=warming up``.
        """
        if self._address is None:
            return False
        lines = []
        for key, value in fields.items():
            if "\n" in value:
                raise ValueError(
                    f"sd_notify field {key.upper()} must be one line, got {value!r}"
                )
            lines.append(f"{key.upper()}={value}")
        message = "\n".join(lines).encode()

        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._socket.sendto(message, self._address)
            except OSError as exc:
                log.warning("cannot notify the service manager (%s): %s", lines, exc)
                return False
        return True

    def ready(self, status: str = "") -> bool:
        """Say that start-up is complete (cameras, model and database are up)."""
        return self.notify(ready="1", **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        """Show `text` as the service's status line in ``systemctl status``."""
        return self.notify(status=text)

    def stopping(self) -> bool:
        """Say that the app is shutting down on purpose."""
        return self.notify(stopping="1")

    def watchdog(self) -> bool:
        """Ping the service manager's watchdog."""
        return self.notify(watchdog="1")

    def close(self) -> None:
        """Close the socket; a later notification opens a new one."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Return how often to ping: half of ``$WATCHDOG_USEC``, or None if unset.

    Raises
    ------
    ValueError
        If ``WATCHDOG_USEC`` is set but is not a positive whole number.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        raise ValueError(
            f"WATCHDOG_USEC must be a positive number of microseconds, got {raw!r}"
        )
    # Limitation: $WATCHDOG_PID is not compared with our own pid, because under the
    # kiosk compositor the service's main process is the compositor and this app is
    # its child; the unit sets NotifyAccess=all for the same reason.
    return usec / 2e6


class Watchdog(threading.Thread):
    """A daemon thread that pings systemd's watchdog while every worker is alive.

    Every `interval_s` it checks the heartbeats; if none is stale it sends
    ``WATCHDOG=1``, otherwise it sends nothing, sets the status line to the
    stalled workers and logs them once, so systemd's watchdog fires and restarts
    the service. Pings resume by themselves if the workers recover in time.

    Parameters
    ----------
    heartbeats : Heartbeats
        The workers to watch.
    notifier : Notifier
        Where to send the pings.
    interval_s : float
        Seconds between checks; use `watchdog_interval_s` (half the period
        systemd allows) or less.
    wait : callable, optional
        ``wait(seconds) -> stop``: sleeps between checks and says whether to stop;
        by default it waits on the event `stop` sets. A simulation passes its own.

    Examples
    --------
    >>> beats, notifier = Heartbeats(), Notifier(environ={})
    >>> dog = Watchdog(beats, notifier, interval_s=0.5)
    >>> dog.start()
    >>> dog.stop()
    """

    def __init__(
        self,
        heartbeats: Heartbeats,
        notifier: Notifier,
        *,
        interval_s: float,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        super().__init__(name="systemd-watchdog", daemon=True)
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive seconds, got {interval_s!r}")
        self._heartbeats = heartbeats
        self._notifier = notifier
        self._interval_s = float(interval_s)
        self._stop_event = threading.Event()
        self._wait = wait or self._stop_event.wait
        self.pings = 0

    @classmethod
    def from_environment(
        cls,
        heartbeats: Heartbeats,
        notifier: Notifier,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Watchdog | None:
        """Return a watchdog at half of ``$WATCHDOG_USEC``, or None when unset."""
        interval = watchdog_interval_s(environ)
        if interval is None or not notifier.enabled:
            log.debug("no systemd watchdog requested")
            return None
        return cls(heartbeats, notifier, interval_s=interval)

    def run(self) -> None:
        """Check and ping until `stop` is called."""
        reported: list[str] = []
        while True:
            stalled = self._heartbeats.stale()
            if not stalled:
                if reported:
                    log.warning(
                        "workers %s beat again; watchdog pings resume",
                        ", ".join(reported),
                    )
                    self._notifier.status("running")
                    reported = []
                if self._notifier.watchdog():
                    self.pings += 1
            elif stalled != reported:
                ages = self._heartbeats.ages()
                log.error(
                    "workers stalled, watchdog pings withheld: %s",
                    ", ".join(f"{name} ({ages[name]:.1f} s)" for name in stalled),
                )
                self._notifier.status(f"stalled: {', '.join(stalled)}")
                reported = stalled
            if self._wait(self._interval_s):
                return

    @property
    def interval_s(self) -> float:
        """Seconds between checks (and so between pings while all is well)."""
        return self._interval_s

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop pinging and wait for the thread to end."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)
