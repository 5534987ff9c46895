"""Workload T without HTTP: the ASGI app called directly, to count what one prediction costs in the process.

    MLGATE_MODEL_REPOSITORY=REPO_T python benchmarks/inprocess.py --requests 20000
    MLGATE_MODEL_REPOSITORY=REPO_T valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no \\
        python benchmarks/inprocess.py --requests 1000 --callgrind

The app is built and started as ``mlgate serve`` does it (lifespan, edge, fast path, real dynamic batcher and
model thread, prediction log, access log written to /dev/null); ``--concurrency`` requests are in flight at once,
each a ``POST /v1/models/breast-cancer:predict`` with one row of scikit-learn's breast-cancer data. After a
warm-up it serves ``--requests`` requests and prints one JSON line: CPU µs per request of the whole process and of
the event loop's thread, requests/s, rows per runtime call and the answers' statuses. With ``--callgrind`` it
switches valgrind's instruction counting on for the measured requests only (``callgrind_control -i on/off``):
the counts do not move with the machine's other tenants, unlike the times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import tempfile
import time

from sklearn.datasets import load_breast_cancer

PATH = "/v1/models/breast-cancer:predict"


def _bodies() -> list[bytes]:
    rows = load_breast_cancer().data[:200]
    return [json.dumps({"instances": [row.tolist()]}).encode() for row in rows]


async def _main(args: argparse.Namespace) -> dict[str, object]:
    os.environ.setdefault("MLGATE_DATA_DIR", tempfile.mkdtemp(prefix="mlgate-inprocess-"))
    from mlgate.app import create_app
    from mlgate.logs import configure_logging
    from mlgate.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, "json")
    for handler in logging.getLogger().handlers:  # the access log stays on, written where it costs no terminal
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - open for the process's life
    app = create_app(settings)
    bodies = _bodies()
    statuses: dict[int, int] = {}

    async def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 40000 + i % args.concurrency), "server": ("127.0.0.1", 8000)}
        sent = False

        async def receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect: the request is answered first
            raise AssertionError

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
                statuses[status] = statuses.get(status, 0) + 1

        await app(scope, receive, send)

    async with app.router.lifespan_context(app):
        await asyncio.gather(*(one(i) for i in range(args.warmup)))
        statuses.clear()
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while issued < args.requests:
                issued += 1
                await one(issued)

        metrics = app.state.mlgate.dataplane.metrics.batch_size.labels("breast-cancer", "1")
        calls_before, rows_before = _histogram(metrics)
        if args.callgrind:
            subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
        wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall, cpu, loop = time.perf_counter() - wall, time.process_time() - cpu, time.thread_time() - loop
        if args.callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True)
        calls, rows = (after - before for after, before in zip(_histogram(metrics), (calls_before, rows_before),
                                                                 strict=True))
    return {"requests": args.requests, "cpu_us_per_request": round(cpu / args.requests * 1e6, 1),
            "loop_thread_us_per_request": round(loop / args.requests * 1e6, 1),
            "requests_per_s": round(args.requests / wall), "rows_per_call": round(rows / max(calls, 1), 1),
            "statuses": statuses}


def _histogram(child: object) -> tuple[float, float]:
    """(count, sum) of a prometheus-client histogram child."""
    samples = {s.name: s.value for metric in child.collect() for s in metric.samples}  # type: ignore[attr-defined]
    return samples["mlgate_batch_size_count"], samples["mlgate_batch_size_sum"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once")
    parser.add_argument("--warmup", type=int, default=200, help="requests served before measuring")
    parser.add_argument("--callgrind", action="store_true", help="count instructions of the measured part only")
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(_main(args))))


if __name__ == "__main__":
    main()
