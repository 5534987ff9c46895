"""gRPC against REST on one `mlgate serve`, driven by h2load: requests/s, p50/p99 and server CPU per request.

    python benchmarks/grpc_vs_rest.py --duration 8 --warmup 2

Starts `python -m mlgate serve` (this checkout's src, ``MLGATE_WORKERS=1``, the example models built into a temp
dir and open to anonymous callers, gRPC on a free port) pinned to CPU ``--server-cpu`` with taskset, then runs
each case with h2load (Debian's ``nghttp2-client``; C, one thread) pinned to ``--client-cpu``. 64 requests in
flight in every case: REST over HTTP/1.1 (``--h1 -c 64``), gRPC over HTTP/2 as a grpc channel pool would send
it (``-c 8 -m 8``: 8 connections of 8 streams) with gRPC-framed bodies (``content-type: application/grpc``).
The same body is sent every time. Latencies come from h2load's per-request log (``--log-file``); server CPU
is utime + stime of the server process over the measured window (/proc), h2load's own CPU likewise, to show
that the client is not the bottleneck. Each gRPC body is sent once through a real grpc client first and its
answer checked (h2load sees HTTP 200 even for a failed gRPC call).

Cases: T (breast-cancer, one row per request): gRPC raw FP64 vs REST JSON. L (digits, 256 rows per request):
gRPC raw FP32 vs REST with the binary tensor extension vs REST JSON. Prints one JSON line per case, a table
and the ratios.

The gRPC floor (cases ``T-grpc-floor``, ``T-grpc-floor-sync``): the most a grpcio server can answer here, to read
the T ratio against. A bare grpcio server in a process of its own (same CPU, same h2load shape and body) whose
``ModelInfer`` parses the request and returns a fixed ``ModelInferResponse`` (no model, no security, no log):
``grpc.aio`` (what mlgate uses) and, for comparison, grpcio's thread-pool server (``grpc.server``, 8 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ["T-grpc", "T-rest-json", "L-grpc", "L-rest-binary", "L-rest-json"]
FLOORS = {"T-grpc-floor": "aio", "T-grpc-floor-sync": "sync"}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(case: str, folder: Path) -> tuple[Path, list[str], str, Any]:
    """(body file, h2load header options, path, gRPC request or None) for ``case``."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer, load_digits

    from mlgate.protocols.grpc import grpc_service_pb2 as pb

    if case.startswith("T"):
        model, name, datatype, rows = "breast-cancer", "features", "FP64", load_breast_cancer().data[:1]
    else:
        model, name, datatype, rows = "digits", "X", "FP32", load_digits().data[:256].astype(np.float32)
    raw = rows.astype(rows.dtype.newbyteorder("<")).tobytes()
    tensor = {"name": name, "shape": list(rows.shape), "datatype": datatype}
    path = folder / f"{case}.body"
    if case.endswith("grpc"):
        request = pb.ModelInferRequest(model_name=model)
        request.inputs.add(name=name, datatype=datatype, shape=list(rows.shape))
        request.raw_input_contents.append(raw)
        message = request.SerializeToString()
        path.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)  # gRPC length-prefixed message
        return path, ["-H", "content-type: application/grpc", "-H", "te: trailers"], \
            "/inference.GRPCInferenceService/ModelInfer", request
    if case.endswith("binary"):
        head = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
                           "parameters": {"binary_data_output": True}}).encode()
        path.write_bytes(head + raw)
        return path, ["-H", "content-type: application/octet-stream",
                      "-H", f"inference-header-content-length: {len(head)}"], f"/v2/models/{model}/infer", None
    path.write_bytes(json.dumps({"inputs": [{**tensor, "data": rows.ravel().tolist()}]}).encode())
    return path, ["-H", "content-type: application/json"], f"/v2/models/{model}/infer", None


def _serve_floor(port: int, kind: str) -> None:
    """Serve the gRPC floor (see the module docstring) on ``port`` until killed."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from mlgate.protocols.grpc import grpc_service_pb2 as pb

    answer = pb.ModelInferResponse(model_name="breast-cancer", model_version="1", id="floor")
    answer.outputs.add(name="label", datatype="INT64", shape=[1])
    answer.raw_output_contents.append(struct.pack("<q", 1))

    def infer(request: Any, context: Any) -> Any:
        return answer

    async def infer_async(request: Any, context: Any) -> Any:
        return answer

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            infer_async if kind == "aio" else infer, request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelInferResponse.SerializeToString)})
    if kind == "sync":
        server = grpc.server(ThreadPoolExecutor(8), handlers=[handler])
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    async def run() -> None:
        aio_server = grpc.aio.server(handlers=[handler])
        aio_server.add_insecure_port(f"127.0.0.1:{port}")
        await aio_server.start()
        await aio_server.wait_for_termination()

    asyncio.run(run())


def _floor_case(case: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Run ``case`` against a floor server started for it (pinned like mlgate's), then stop that server."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(["taskset", "-c", args.server_cpu, sys.executable, __file__, "--serve-floor",
                               f"{port}:{FLOORS[case]}"], env=env)
    try:
        deadline = time.monotonic() + 30
        _, _, _, request = _body("T-grpc", folder)
        while True:
            try:
                _check_grpc(port, request)
                break
            except Exception:  # noqa: BLE001 - not up yet (grpc.RpcError), or up with a wrong answer: retry, then fail
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the {case} server did not start") from None
                time.sleep(0.2)
        return _run_case(case, args, server.pid, (0, port), folder)
    finally:
        server.kill()
        server.wait(timeout=10)


def _check_grpc(port: int, request: Any) -> None:
    import grpc

    from mlgate.protocols.grpc import grpc_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
        assert answer.raw_output_contents, answer


def _run_case(case: str, args: argparse.Namespace, server_pid: int, ports: tuple[int, int],
              folder: Path) -> dict[str, Any]:
    body, headers, path, request = _body(case.removesuffix("-floor-sync").removesuffix("-floor"), folder)
    http_port, grpc_port = ports
    if request is not None:
        _check_grpc(grpc_port, request)
    log = folder / f"{case}.log"
    log.unlink(missing_ok=True)
    shape = ["-c", "8", "-m", "8"] if request is not None else ["--h1", "-c", "64"]
    url = f"http://127.0.0.1:{grpc_port if request is not None else http_port}{path}"
    command = ["taskset", "-c", args.client_cpu, "h2load", *shape, "-D", str(args.duration),
               "--warm-up-time", str(args.warmup), "-d", str(body), *headers, f"--log-file={log}", url]
    load1 = os.getloadavg()[0]
    client = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    samples: dict[str, tuple[float, float]] = {}

    def sample(name: str, delay: float) -> None:
        time.sleep(delay)
        try:
            samples[name] = (_cpu_s(server_pid), _cpu_s(client.pid))
        except FileNotFoundError:  # h2load already exited (it failed, or the machine stalled it)
            samples[name] = (_cpu_s(server_pid), float("nan"))

    # h2load exits as its window ends: sample just inside it (the rates below use this shorter window).
    window = args.duration - 0.2
    start = threading.Thread(target=sample, args=("start", args.warmup + 0.1))
    stop = threading.Thread(target=sample, args=("stop", args.warmup + 0.1 + window))
    start.start(), stop.start()
    out, _ = client.communicate()
    assert log.exists() and "start" in samples and "stop" in samples, (command, out)
    start.join(), stop.join()
    latencies = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    done = re.search(r"(\d+) succeeded, (\d+) failed", out)
    assert done is not None and int(done.group(2)) == 0 and "0 4xx, 0 5xx" in out, out
    requests = int(done.group(1))
    server_cpu = samples["stop"][0] - samples["start"][0]
    client_cpu = samples["stop"][1] - samples["start"][1]
    return {"case": case, "requests": requests, "req_s": requests / args.duration,
            "p50_ms": latencies[len(latencies) // 2] / 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] / 1000,
            "server_cpu_ms_per_req": server_cpu / max(requests * window / args.duration, 1) * 1000,
            "server_cpu_per_s": server_cpu / window, "client_cpu_per_s": client_cpu / window, "load1": load1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds measured per case")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per case")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--serve-floor", metavar="PORT:KIND", help=argparse.SUPPRESS)
    parser.add_argument("cases", nargs="*", default=CASES, help=f"of {CASES + list(FLOORS)}")
    args = parser.parse_args()
    if args.serve_floor:
        port, kind = args.serve_floor.split(":")
        _serve_floor(int(port), kind)
        return
    if unknown := set(args.cases) - set(CASES) - set(FLOORS):
        parser.error(f"unknown cases {sorted(unknown)}")
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")

    from mlgate.model.examples import build_examples

    tmp = Path(tempfile.mkdtemp(prefix="mlgate-grpc-bench-"))
    build_examples(tmp / "models", names=["breast-cancer", "digits"], open_demo=True)
    ports = (_free_port(), _free_port())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLGATE_WORKERS": "1", "MLGATE_GRPC_PORT": str(ports[1]),
           "MLGATE_DATA_DIR": str(tmp / "data"), "MLGATE_LOG_FORMAT": "json"}
    with (tmp / "server.log").open("wb") as log:
        server = subprocess.Popen(["taskset", "-c", args.server_cpu, sys.executable, "-m", "mlgate", "serve",
                                   "--model-repository", str(tmp / "models"), "--port", str(ports[0])],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit(f"server did not start; see {tmp / 'server.log'}") from None
                    time.sleep(0.3)
            rows = []
            for case in args.cases:
                row = (_floor_case(case, args, tmp) if case in FLOORS else
                       _run_case(case, args, server.pid, ports, tmp))
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("\n| case | req/s | p50 ms | p99 ms | server CPU ms/req | server CPU/s | h2load CPU/s | load1 |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['req_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['server_cpu_ms_per_req']:.2f} | {r['server_cpu_per_s']:.2f} | {r['client_cpu_per_s']:.2f} | "
              f"{r['load1']:.1f} |")
    by = {r["case"]: r for r in rows}
    for a, b in (("T-grpc", "T-rest-json"), ("T-grpc-floor", "T-rest-json"), ("T-grpc-floor-sync", "T-rest-json"),
                 ("L-grpc", "L-rest-binary"), ("L-grpc", "L-rest-json")):
        if a in by and b in by:
            print(f"{a} / {b}: requests/s {by[a]['req_s'] / by[b]['req_s']:.2f}x, p99 {by[a]['p99_ms']:.1f} vs "
                  f"{by[b]['p99_ms']:.1f} ms, server CPU per request "
                  f"{by[a]['server_cpu_ms_per_req'] / by[b]['server_cpu_ms_per_req']:.2f}x")


if __name__ == "__main__":
    main()
