"""Median latency of one request per credential kind, credential cache off (A) vs on (B), interleaved.

Starts two real `mlgate serve` processes (one HTTP process each, the same SQLite file, access log on, as
shipped) that differ only in ``MLGATE_AUTH_CACHE_SIZE`` (0 vs the default), makes a user, an API key and an
access token, then sends ``GET /v2/models/breast-cancer`` (metadata: no inference, so auth dominates)
alternately to A and B, one request at a time, per kind (anonymous, key, token). Several rounds; the medians
of each round and over all are printed. The machine is shared and noisy: compare A and B of the same run.

    PYTHONPATH=src python benchmarks/auth_latency.py [--rounds 5] [--requests 200] [--path /v2/models/...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

USER, PASSWORD = "bench", "bench password long enough"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: Path, cache_size: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {**os.environ, "MLGATE_DATA_DIR": str(data_dir), "MLGATE_WORKERS": "1",
           "MLGATE_ANONYMOUS_MODELS": '["*"]', "MLGATE_AUTH_CACHE_SIZE": str(cache_size),
           "MLGATE_RATE_LIMIT_TIERS": '{"anonymous": {"requests": ""}, "default": {"requests": ""}}',
           "MLGATE_ADMIN_USERNAME": USER, "MLGATE_ADMIN_PASSWORD": PASSWORD}
    proc = subprocess.Popen([sys.executable, "-m", "mlgate", "serve", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server not ready"
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--path", default="/v2/models/breast-cancer")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mlgate-authbench-"))
    a, url_a = _start(data_dir, 0, data_dir / "a.log")
    b, url_b = _start(data_dir, 10_000, data_dir / "b.log")
    try:
        with httpx.Client(timeout=10) as client:
            token = client.post(f"{url_a}/api/v1/auth/token", data={"username": USER, "password": PASSWORD}
                                ).json()["access_token"]
            key = client.post(f"{url_a}/api/v1/keys", json={"name": "bench"},
                              headers={"Authorization": f"Bearer {token}"}).json()["key"]
            kinds = {"anonymous": {}, "key": {"Authorization": f"Bearer {key}"},
                     "token": {"Authorization": f"Bearer {token}"}}
            for headers in kinds.values():  # warm both servers and connections
                for url in (url_a, url_b):
                    for _ in range(20):
                        assert client.get(url + args.path, headers=headers).status_code == 200
            samples: dict[tuple[str, str], list[float]] = {(k, s): [] for k in kinds for s in "AB"}
            for round_ in range(args.rounds):
                line = []
                for kind, headers in kinds.items():
                    got: dict[str, list[float]] = {"A": [], "B": []}
                    for i in range(args.requests):
                        order = (("A", url_a), ("B", url_b)) if i % 2 == 0 else (("B", url_b), ("A", url_a))
                        for side, url in order:
                            started = time.perf_counter()
                            response = client.get(url + args.path, headers=headers)
                            got[side].append((time.perf_counter() - started) * 1000)
                            assert response.status_code == 200, response.text
                    for side in "AB":
                        samples[(kind, side)] += got[side]
                    line.append(f"{kind} A {statistics.median(got['A']):.2f} B {statistics.median(got['B']):.2f}")
                print(f"round {round_ + 1}: " + " | ".join(line), flush=True)
            print("all rounds, median ms (A = cache off, B = cache on):")
            for kind in kinds:
                med_a, med_b = statistics.median(samples[(kind, "A")]), statistics.median(samples[(kind, "B")])
                print(f"  {kind:9s} A {med_a:6.2f}  B {med_b:6.2f}  ({len(samples[(kind, 'A')])} each)")
    finally:
        for proc in (a, b):
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
