"""`mlgate.supervisor`: one listening socket per HTTP process, spread by the kernel, and a process that dies
started again on its own slot's socket."""

from __future__ import annotations

import signal
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config

from mlgate.supervisor import Supervisor, listening_sockets

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux only")


def _config(workers: int = 2) -> Config:
    return Config("mlgate.server:create_app_from_environment", host="127.0.0.1", port=0, workers=workers)


@pytest.fixture
def saved_signals() -> Iterator[None]:
    """uvicorn's supervisor installs handlers for a dozen signals on construction: put pytest's back."""
    names = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2", "SIGWINCH")
    signals = [getattr(signal, n) for n in names if hasattr(signal, n)]
    saved = {s: signal.getsignal(s) for s in signals}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@linux_only
def test_each_process_gets_its_own_socket_and_the_kernel_spreads_connections() -> None:
    config = _config()
    sockets = listening_sockets(config, 2)
    try:
        assert len(sockets) == 2 and config.port != 0
        assert {s.getsockname()[1] for s in sockets} == {config.port}
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
        clients = [socket.create_connection(("127.0.0.1", config.port), timeout=5) for _ in range(32)]
        accepted: Counter[int] = Counter()
        for index, listener in enumerate(sockets):
            listener.setblocking(False)
            while True:
                try:
                    connection, _ = listener.accept()
                except BlockingIOError:
                    break
                connection.close()
                accepted[index] += 1
        for client in clients:
            client.close()
        # A burst of 32 connections, as a benchmark's or a load balancer's pool opens them: both sockets take
        # a share (one shared socket gave one process 26 and the other 6 in tests/server/test_workers.py).
        assert sum(accepted.values()) == 32 and min(accepted[0], accepted[1]) >= 8, accepted
    finally:
        for s in sockets:
            s.close()


def test_one_process_shares_the_one_socket() -> None:
    config = _config(workers=1)
    sockets = listening_sockets(config, 1)
    try:
        assert len(sockets) == 1
    finally:
        sockets[0].close()


@linux_only
def test_a_taken_port_is_an_error_and_leaves_nothing_open() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = _config()
        config.port = taken.getsockname()[1]
        with pytest.raises(OSError):
            listening_sockets(config, 2)


class _DeadProcess:
    """A process slot whose process died on its own (not at start-up)."""

    pid = 4242
    exitcode = 1

    def is_alive(self, timeout: float = 5) -> bool:
        return False

    def kill(self) -> None:
        return

    def join(self) -> None:
        return


class _LiveProcess(_DeadProcess):
    def is_alive(self, timeout: float = 5) -> bool:
        return True


@linux_only
def test_a_process_that_died_is_started_again_on_its_own_socket(saved_signals: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config()
    sockets = listening_sockets(config, 2)
    try:
        supervisor = Supervisor(config, sockets)
        assert supervisor.slots == sockets
        started: list[int] = []

        def start(slot: int) -> Any:
            started.append(slot)
            return _LiveProcess()

        monkeypatch.setattr(supervisor, "_start", start)
        supervisor.processes = [_LiveProcess(), _DeadProcess()]  # type: ignore[list-item]
        supervisor.keep_subprocess_alive()
        assert started == [1]  # slot 1 again, so its socket (and its backlog) is served again
        supervisor.handle_ttin()  # the sockets are bound once: no process is added
        assert len(supervisor.processes) == 2
    finally:
        for s in sockets:
            s.close()


def test_with_one_shared_socket_every_slot_serves_it(saved_signals: None) -> None:
    config = _config(workers=3)
    shared = config.bind_socket()
    try:
        assert Supervisor(config, [shared]).slots == [shared] * 3
    finally:
        shared.close()
