#!/usr/bin/env python3
"""A local mlgate cluster: HAProxy (the Debian package) in front of three `mlgate serve` replicas, and two
`mlgate worker`s running jobs from RabbitMQ, on the machine's real PostgreSQL, Redis and RabbitMQ.

    python deploy/local/cluster.py up --database-url postgresql://postgres@127.0.0.1:5432/mlgate \\
        --redis-url redis://127.0.0.1:6379/5 --broker-url amqp://guest:guest@127.0.0.1:5672/ \\
        --model-repository ./models

It runs the same steps as compose.yaml and the Kubernetes manifests, with the same settings
(deploy/mlgate.env) and the same HAProxy configuration (deploy/haproxy/haproxy.cfg):

1. ``mlgate db upgrade`` once (the migrations Job);
2. three ``mlgate serve`` replicas, each with its own data directory (artifact cache) and one shared
   artifact store, JWT key and admin-session key;
3. HAProxy, which sends traffic only to replicas whose ``GET /v2/health/ready`` answers 200;
4. with a broker (``--broker-url``, ``MLGATE_JOBS_BROKER``): two ``mlgate worker`` processes, which run the
   jobs the replicas queue (the replicas then run none themselves).

tests/deploy/test_local_cluster.py drives this class (rolling restart, promote and rollback, SIGKILL, key
revocation, rate limits, a database outage, a worker killed mid-job) and docs/deployment.md has its measured
table. Only the
standard library and httpx (a dependency of mlgate) are used.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEPLOY = Path(__file__).resolve().parent.parent
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
SHARED_ENV = DEPLOY / "mlgate.env"
HAPROXY = os.environ.get("HAPROXY", "/usr/sbin/haproxy")
ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "local cluster admin password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines skipped), as compose's ``env_file`` reads them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@dataclass
class Replica:
    name: str
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Worker:
    name: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_offset: int = 0
    """Where this start's lines begin in ``log_path``."""


class LocalCluster:
    """HAProxy and ``replicas`` mlgate processes under ``workdir`` (logs, data directories, artifact store)."""

    def __init__(self, workdir: Path, *, database_url: str, model_repository: Path, redis_url: str | None = None,
                 replicas: int = 3, lb_port: int | None = None, extra_env: dict[str, str] | None = None,
                 broker_url: str | None = None, workers: int = 2) -> None:
        if replicas != 3:
            raise ValueError("deploy/haproxy/haproxy.cfg names three replicas")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.lb_port = lb_port or free_port()
        self.stats_port = free_port()
        self.replicas = [Replica(f"r{i}", free_port(), workdir / f"data-r{i}", workdir / f"r{i}.log")
                         for i in range(1, replicas + 1)]
        self.env = {
            **os.environ, **read_env_file(SHARED_ENV),
            "MLGATE_DATABASE_URL": database_url,
            "MLGATE_ARTIFACT_STORE": str(workdir / "artifacts"),
            "MLGATE_JWT_SECRET": secrets.token_hex(32),
            "MLGATE_ADMIN_SESSION_SECRET": secrets.token_hex(32),
            "MLGATE_ADMIN_USERNAME": ADMIN_USERNAME, "MLGATE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLGATE_TRUSTED_PROXIES": '["127.0.0.1/32"]',
            **({"MLGATE_RATE_LIMIT_STORAGE": redis_url} if redis_url else {}),
            **({"MLGATE_JOBS_BROKER": broker_url} if broker_url else {}),
            **(extra_env or {}),
        }
        self.workers = [Worker(f"w{i}", workdir / f"data-w{i}", workdir / f"w{i}.log")
                        for i in range(1, workers + 1)] if broker_url else []
        self.model_repository = model_repository
        self.haproxy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The load balancer: what clients use."""
        return f"http://127.0.0.1:{self.lb_port}"

    # -- life cycle -------------------------------------------------------------------------------

    def start(self, timeout_s: float = 120) -> None:
        """Migrate, start every replica, worker and HAProxy, and wait until HAProxy has every replica UP."""
        self.migrate()
        for replica in self.replicas:
            self.start_replica(replica, wait=False)
        for worker in self.workers:
            self.start_worker(worker, wait=False)
        for worker in self.workers:
            self.wait_worker(worker, timeout_s)
        for replica in self.replicas:
            self.wait_ready(replica, timeout_s)
        self.start_haproxy()
        for replica in self.replicas:
            self.wait_state(replica, "UP", timeout_s=10)

    def migrate(self) -> str:
        """``mlgate db upgrade``, once, before any replica starts; returns what it printed."""
        done = subprocess.run([sys.executable, "-m", "mlgate", "db", "upgrade"], env=self.env, capture_output=True,
                              text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mlgate db upgrade failed: {done.stdout}{done.stderr}")
        return done.stdout.strip()

    def start_replica(self, replica: Replica, *, wait: bool = True, timeout_s: float = 120) -> None:
        env = {**self.env, "MLGATE_DATA_DIR": str(replica.data_dir)}
        with replica.log_path.open("ab") as log:
            replica.proc = subprocess.Popen(
                [sys.executable, "-m", "mlgate", "serve", "--host", "127.0.0.1", "--port", str(replica.port),
                 "--model-repository", str(self.model_repository)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready(replica, timeout_s)

    def start_worker(self, worker: Worker, *, wait: bool = True, timeout_s: float = 120) -> None:
        """``mlgate worker`` (the same settings as the replicas, its own data directory)."""
        env = {**self.env, "MLGATE_DATA_DIR": str(worker.data_dir)}
        worker.log_offset = worker.log_path.stat().st_size if worker.log_path.exists() else 0
        with worker.log_path.open("ab") as log:
            worker.proc = subprocess.Popen(
                [sys.executable, "-m", "mlgate", "worker", "--model-repository", str(self.model_repository)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_worker(worker, timeout_s)

    def wait_worker(self, worker: Worker, timeout_s: float = 120) -> None:
        """Wait until the worker said "worker ready" (connected to the broker, models loaded) since it started."""
        deadline = time.monotonic() + timeout_s
        while True:
            if worker.proc is None or worker.proc.poll() is not None:
                raise RuntimeError(f"{worker.name} exited: {worker.log_path.read_text()[-3000:]}")
            if b"worker ready" in worker.log_path.read_bytes()[worker.log_offset:]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{worker.name} not ready in {timeout_s} s")
            time.sleep(0.1)

    def wait_ready(self, replica: Replica, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if replica.proc is None or replica.proc.poll() is not None:
                raise RuntimeError(f"{replica.name} exited: {replica.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{replica.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{replica.name} not ready in {timeout_s} s")
            time.sleep(0.1)

    def stop_replica(self, replica: Replica, sig: int = signal.SIGTERM, timeout_s: float = 60) -> float:
        """Send ``sig`` and wait for the exit; returns the seconds it took."""
        assert replica.proc is not None
        started = time.monotonic()
        replica.proc.send_signal(sig)
        replica.proc.wait(timeout=timeout_s)
        return time.monotonic() - started

    def start_haproxy(self) -> None:
        env = {**self.env, "MLGATE_LB_BIND": f"127.0.0.1:{self.lb_port}",
               "MLGATE_STATS_BIND": f"127.0.0.1:{self.stats_port}",
               **{f"MLGATE_REPLICA_{i}": f"127.0.0.1:{r.port}" for i, r in enumerate(self.replicas, 1)}}
        with (self.workdir / "haproxy.log").open("ab") as log:
            self.haproxy = subprocess.Popen([HAPROXY, "-f", str(HAPROXY_CFG), "-db"], stdout=log,
                                            stderr=subprocess.STDOUT, env=env)

    def states(self) -> dict[str, str]:
        """HAProxy's view: replica name -> UP, DOWN, ``UP 1/2`` (going down), ``DOWN 1/2`` (coming up)..."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2).text.lstrip("# ")
        return {row["svname"]: row["status"] for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_state(self, replica: Replica, state: str, timeout_s: float = 30) -> float:
        """Wait until HAProxy reports ``replica`` exactly ``state`` (UP or DOWN); returns the seconds waited."""
        started = time.monotonic()
        while True:
            try:
                with_state = self.states().get(replica.name)
            except httpx.TransportError:  # HAProxy still starting
                with_state = None
            if with_state == state:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"HAProxy still has {replica.name} {with_state}, not {state}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM every replica (they drain) and worker (running jobs finish or go back), then stop HAProxy."""
        processes: list[Replica | Worker] = [*self.replicas, *self.workers]
        for replica in processes:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in processes:
            if replica.proc is not None:
                try:
                    replica.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    replica.proc.kill()
                    replica.proc.wait()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL shared by the replicas.")
    parser.add_argument("--redis-url", help="Redis URL of the rate-limit counters (shared by the replicas).")
    parser.add_argument("--broker-url", help="RabbitMQ (amqp://...) of the jobs: starts two `mlgate worker`s.")
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("mlgate-cluster"))
    parser.add_argument("--port", type=int, default=8080, help="Where HAProxy listens.")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.workdir.resolve(), database_url=args.database_url, redis_url=args.redis_url,
                           model_repository=args.model_repository.resolve(), lb_port=args.port,
                           broker_url=args.broker_url)
    try:
        cluster.start()
        print(f"mlgate cluster on {cluster.url} (HAProxy stats: http://127.0.0.1:{cluster.stats_port}/stats); "
              f"replicas: {', '.join(r.url for r in cluster.replicas)}; logs in {cluster.workdir}. Ctrl-C stops it.")
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        while not stopping.wait(1):
            pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
