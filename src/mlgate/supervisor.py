"""The supervisor of ``--workers N``: uvicorn's, with one listening socket per HTTP process.

uvicorn's own supervisor binds one socket and hands it to every process, which then race to ``accept`` new
connections. An event loop accepts every connection waiting when it wakes, so a burst of connections (a load
balancer's or a benchmark client's pool opening, 64 at once) lands on whichever process wakes first, and a
keep-alive connection stays where it landed: measured on 2026-12-06, 64 of 64 wrk connections on one of two
processes, the other idle (``benchmarks/RESULTS.md``, issue 17).

On Linux each process slot gets its own socket bound to the same address with ``SO_REUSEPORT``, and the kernel
spreads new connections over the sockets by a hash of their addresses (socket(7), "SO_REUSEPORT"). The parent
keeps every socket open, so a process that dies and is started again takes over its slot's socket, and the
connections that arrived meanwhile wait in that socket's backlog instead of being refused. Elsewhere
(``SO_REUSEPORT`` missing, or not balancing, as on macOS) the processes share one socket, as uvicorn does.
"""

from __future__ import annotations

import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger

__all__ = ["Supervisor", "listening_sockets"]


def listening_sockets(config: Config, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``config.host:config.port`` with ``SO_REUSEPORT`` (Linux), else one
    shared socket (``config.bind_socket()``). Raises OSError when the address is taken (EADDRINUSE)."""
    if count <= 1 or not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT") \
            or config.uds or config.fd is not None:
        return [config.bind_socket()]
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((config.host, config.port))
            sock.listen(config.backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    if config.port == 0:  # a port chosen by the kernel: the others must join the first one's
        port = sockets[0].getsockname()[1]
        for sock in sockets:
            sock.close()
        config.port = port
        return listening_sockets(config, count)
    logger.info(f"Listening on http://{config.host}:{config.port} with one socket per process ({count})")
    return sockets


class Supervisor(Multiprocess):
    """uvicorn's ``Multiprocess`` where process slot ``i`` always serves ``sockets[i]`` (one socket per slot),
    or every slot the one shared socket. Adding or removing processes by signal (SIGTTIN/SIGTTOU) is refused
    with a log line when there is a socket per slot: the sockets are bound once, at start."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.slots = sockets if len(sockets) == config.workers else [sockets[0]] * config.workers

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.slots[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        """Start one process per slot."""
        self.processes = [self._start(slot) for slot in range(self.processes_num)]

    def restart_all(self) -> None:
        """SIGHUP: replace each process by a new one on the same socket, the new one ready before the old goes."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._start(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error(f"New process [{new.pid}] was not ready in time; keeping [{old.pid}]")
                return
            old.terminate()
            old.join()
            self.processes[slot] = new

    def keep_subprocess_alive(self) -> None:
        """Start a process again in its slot when it died or stopped answering the health check."""
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # broken app or settings: every restart would fail alike
                logger.error(f"Process [{process.pid}] failed to start; stopping the server.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Process [{process.pid}] died; starting another on its socket")
            self.processes[slot] = self._start(slot)

    def handle_ttin(self) -> None:
        logger.info("SIGTTIN ignored: the number of HTTP processes is fixed at start (--workers)")

    def handle_ttou(self) -> None:
        logger.info("SIGTTOU ignored: the number of HTTP processes is fixed at start (--workers)")
