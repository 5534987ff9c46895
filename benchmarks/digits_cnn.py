"""digits-cnn (the Keras example, PyTorch backend) images/s: mlgate over V2 against the same model's in-process
``predict`` at its best batch size and against a plain FastAPI app calling ``model.predict`` per request.

Usage: python benchmarks/digits_cnn.py [--duration 10] [--connections 64] [--client-cpu 1] [--rounds 3]

1. Builds ``digits-cnn`` (``mlgate examples build``'s code) into a scratch repository.
2. In-process: ``model.predict_on_batch`` (and, in the first round, ``model.predict``) on held-out digits at
   batch sizes 1-512, in this process, with both servers up and idle (images/s; the best median is the
   ceiling a server could reach on this machine).
3. mlgate: ``mlgate serve`` of that repository with the manifest as built (dynamic batching up to 64, 2 ms),
   ``POST /v2/models/digits-cnn/infer``, one image per request (JSON, FP32 ``[1, 8, 8, 1]``).
4. The peer: ``benchmarks/peers/fastapi_keras.py`` under uvicorn (1 process, uvloop, httptools, no access log),
   ``POST /predict`` with ``{"image": [64 floats]}``.
Rounds (``--rounds``, default 3) interleave in-process, mlgate and the peer, so that the machine's load (it
is shared) falls on all of them alike; the table gives medians and every round. Each server is measured
with ``wrk -t1 -c<connections>`` pinned to CPU ``--client-cpu`` (``taskset``), after a
3 s warm-up, bodies rotated over 200 held-out digits (``benchmarks/wrk_post.lua``). To show the client is
not the bottleneck, wrk's own CPU time is recorded (its share of its one core), and wrk is also run against the
peer's ``/noop`` (same body, parsed, no model): the rate a client of this kind sustains on this machine.
Prints one JSON line per measurement and a Markdown table with the ratios. The machine is shared: the load
average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
BATCHES = (1, 8, 16, 32, 64, 128, 256, 512)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_process(model: Any, images: Any, method: str, round_: int, seconds: float = 2.0) -> list[dict[str, Any]]:
    """images/s of ``model.<method>`` per batch size, each run for about ``seconds``."""
    import numpy as np

    records = []
    call = model.predict_on_batch if method == "predict_on_batch" else (lambda x: model.predict(x, verbose=0))
    for batch in BATCHES:
        x = np.ascontiguousarray(np.resize(images, (batch, 8, 8, 1)).astype(np.float32))
        call(x)  # warm
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            call(x)
            done += batch
        records.append({"kind": "in_process", "round": round_, "method": method, "batch": batch,
                        "images_per_s": round(done / elapsed, 1), "loadavg": load_average()})
        print(json.dumps(records[-1]), flush=True)
    return records


def wrk(url: str, bodies: Path, duration: int, connections: int, cpu: int) -> dict[str, Any]:
    """One wrk run; its WRKJSON line, with requests/s and wrk's CPU use (a share of the one core it is on)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s",
         "-s", str(HERE / "wrk_post.lua"), url],
        env={**os.environ, "BODIES_FILE": str(bodies)}, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    record: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    seconds = record["duration_us"] / 1e6
    record["requests_per_s"] = round(record["requests"] / seconds, 1)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record["client_cpu_share"] = round(cpu_s / seconds, 3)
    return record


@contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str, body: dict[str, Any],
            log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.post(ready_url, json=body, timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{command[:4]} did not answer; see {log}")
            time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def measure(name: str, url: str, bodies: Path, args: argparse.Namespace, round_: int) -> dict[str, Any]:
    wrk(url, bodies, 3, args.connections, args.client_cpu)  # warm-up
    record = {"kind": "http", "round": round_, "server": name, "loadavg": load_average(),
              **wrk(url, bodies, args.duration, args.connections, args.client_cpu)}
    print(json.dumps(record), flush=True)
    return record


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "torch")
    print(json.dumps({"kind": "start", "loadavg": load_average(), "cpus": os.cpu_count()}), flush=True)
    import keras

    from mlgate.model.examples import build_examples
    from mlgate.model.examples.digits_cnn import held_out_split

    with tempfile.TemporaryDirectory(prefix="mlgate-digits-cnn-bench-") as scratch, ExitStack() as servers:
        tmp = Path(scratch)
        build_examples(tmp / "repo", names=["digits-cnn"])
        model_path = tmp / "repo" / "digits-cnn" / "model.keras"
        _, x_test, _, _ = held_out_split()
        images = x_test[:200]
        v2_bodies, plain_bodies = tmp / "v2.jsonl", tmp / "plain.jsonl"
        v2 = [{"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32",
                           "data": [round(float(v), 4) for v in image.ravel()]}]} for image in images]
        plain = [{"image": body["inputs"][0]["data"]} for body in v2]
        v2_bodies.write_text("".join(json.dumps(b) + "\n" for b in v2))
        plain_bodies.write_text("".join(json.dumps(b) + "\n" for b in plain))

        env = {**os.environ, "MLGATE_DATA_DIR": str(tmp / "data"), "MLGATE_ACCESS_LOG": "false",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent / "src"), os.environ.get("PYTHONPATH")]))}
        port = free_port()
        infer = f"http://127.0.0.1:{port}/v2/models/digits-cnn/infer"
        servers.enter_context(running(
            [sys.executable, "-m", "mlgate", "serve", "-m", str(tmp / "repo"), "--port", str(port)],
            env, infer, v2[0], tmp / "mlgate.log"))
        port = free_port()
        predict = f"http://127.0.0.1:{port}/predict"
        servers.enter_context(running(
            [sys.executable, "-m", "uvicorn", "fastapi_keras:app", "--app-dir", str(HERE / "peers"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
             "--http", "httptools", "--no-access-log", "--log-level", "warning"],
            {**env, "DIGITS_CNN": str(model_path)}, predict, plain[0], tmp / "peer.log"))
        model = keras.saving.load_model(model_path)

        # Rounds, interleaved (in-process, mlgate, peer; again), both servers up and idle while not measured.
        offline: list[dict[str, Any]] = []
        served: list[dict[str, Any]] = []
        peer: list[dict[str, Any]] = []
        for round_ in range(args.rounds):
            offline += in_process(model, images, "predict_on_batch", round_)
            if round_ == 0:
                offline += in_process(model, images, "predict", round_)
            served.append(measure("mlgate", infer, v2_bodies, args, round_))
            peer.append(measure("fastapi-peer", predict, plain_bodies, args, round_))
        floor = measure("fastapi-noop", predict.replace("/predict", "/noop"), plain_bodies, args, args.rounds - 1)

    for record in served + peer:
        if record["non_2xx"] or record["socket_errors"]:
            print(f"warning: {record['server']} had errors: {record}", file=sys.stderr)
    by_batch = {}
    for record in offline:
        by_batch.setdefault((record["method"], record["batch"]), []).append(record["images_per_s"])
    (method, batch), rates = max(by_batch.items(), key=lambda item: median(item[1]))
    best = median(rates)
    rate = median([r["requests_per_s"] for r in served])
    peer_rate = median([r["requests_per_s"] for r in peer])
    summary = {"kind": "summary", "loadavg_end": load_average(), "rounds": args.rounds,
               "best_in_process": {"method": method, "batch": batch, "images_per_s": best},
               "mlgate_images_per_s": rate, "fastapi_peer_images_per_s": peer_rate,
               "client_floor_requests_per_s": floor["requests_per_s"],
               "mlgate_vs_best_in_process": round(rate / best, 3), "mlgate_vs_fastapi_peer": round(rate / peer_rate, 2)}
    print(json.dumps(summary), flush=True)
    print(f"\nMedians of {args.rounds} interleaved rounds.\n")
    print("| what | images/s (median) | per round | wrk CPU (of its core) |\n|---|---|---|---|")
    for (m, b), values in sorted(by_batch.items()):
        print(f"| in-process `{m}`, batch {b} | {median(values):.0f} | {' / '.join(f'{v:.0f}' for v in values)} | |")
    for name, records in (("mlgate V2 (JSON, one image per request)", served),
                          ("FastAPI peer (`model.predict` per request)", peer),
                          ("FastAPI `/noop` (client floor)", [floor])):
        values = [r["requests_per_s"] for r in records]
        cpu = max(r["client_cpu_share"] for r in records)
        print(f"| {name} | {median(values):.0f} | {' / '.join(f'{v:.0f}' for v in values)} | ≤ {cpu:.0%} |")


if __name__ == "__main__":
    main()
