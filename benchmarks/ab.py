"""Quick A/B of HTTP servers on workload T (or E): requests/s and requests per server-CPU-second, back to back.

    python benchmarks/ab.py --reps 3 floor mlgate=/path/to/checkout-A mlgate=/path/to/checkout-B

Each rep starts every server afresh in turn (interleaved A B A B, so the noisy machine's drifts hit all alike),
waits for one HTTP 200, warms up ``--warmup`` s with wrk, then measures ``--duration`` s with wrk and the
harness's Lua script (``../shared/bench/tools/wrk_post.lua``, 64 connections, 1 thread). Server CPU is the
utime + stime of the server's process tree over the measured window (``/proc``), so ``req/cpu-s`` = requests
per second of server CPU, the number least disturbed by other tenants. ``load1`` is the machine's 1-minute load
before the window. The server runs with this interpreter (``sys.executable``), mlgate from ``<checkout>/src``
on ``PYTHONPATH``, ``MLGATE_WORKERS=--workers``, a fresh ``MLGATE_DATA_DIR`` and the model repository
``--repository``. ``floor`` is the harness's uvicorn + FastAPI no-op route (``apps/fastapi_app.py``), with
``--workers`` processes. Bodies: ``--bodies`` (JSON lines; one per request, rotated). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = Path(os.environ.get("BENCH_SRC", HERE.parent.parent / "shared" / "bench"))


def _tree(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _ticks(pids: list[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = fields[fields.rfind(")") + 2:].split()
        ticks[pid] = int(rest[11]) + int(rest[12])
    return ticks


def _command(spec: str, port: int, args: argparse.Namespace) -> tuple[list[str], dict[str, str], str]:
    env = dict(os.environ)
    if spec == "floor":
        env.update(BENCH_WORKLOAD="T", BENCH_T_MODEL=args.floor_model, PYTHONPATH=str(BENCH / "apps"))
        cmd = [str(Path(sys.executable).with_name("uvicorn")), "fastapi_app:app", "--app-dir", str(BENCH / "apps"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers), "--loop", "uvloop",
               "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        return cmd, env, "/noop"
    _, _, checkout = spec.partition("=")
    env.update(PYTHONPATH=str(Path(checkout) / "src"), MLGATE_WORKERS=str(args.workers),
               MLGATE_DATA_DIR=tempfile.mkdtemp(prefix="mlgate-ab-"), MLGATE_MODEL_REPOSITORY=args.repository)
    cmd = [sys.executable, "-m", "mlgate", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return cmd, env, args.path


def _wait(url: str, body: bytes, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server for {url} did not become ready")


def _wrk(url: str, seconds: float, args: argparse.Namespace, bodies: str) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{args.conns}", f"-d{int(seconds)}s", "--timeout", "30s",
                          "-s", str(BENCH / "tools" / "wrk_post.lua"), url],
                         env={**os.environ, "BODIES_FILE": bodies}, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
    return result


def run_one(spec: str, port: int, args: argparse.Namespace) -> dict[str, object]:
    cmd, env, path = _command(spec, port, args)
    bodies = args.floor_bodies if spec == "floor" else args.bodies
    url = f"http://127.0.0.1:{port}{path}"
    log = open(Path(tempfile.gettempdir()) / f"ab-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(url, Path(bodies).read_text().splitlines()[0].encode(), proc)
        _wrk(url, args.warmup, args, bodies)
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        before = _ticks(_tree(proc.pid))
        t0 = time.time()
        result = _wrk(url, args.duration, args, bodies)
        wall = time.time() - t0
        after = _ticks(_tree(proc.pid))
        cpu_s = sum(after[p] - before.get(p, 0) for p in after) / os.sysconf("SC_CLK_TCK")
        rps = result["requests"] / (result["duration_us"] / 1e6)
        return {"server": spec, "workers": args.workers, "rps": round(rps, 1), "p50_ms": result["p50_us"] / 1000,
                "p99_ms": result["p99_us"] / 1000, "errors": result["err_status"] + result["err_timeout"],
                "server_cpu_pct": round(100 * cpu_s / wall), "req_per_cpu_s": round(result["requests"] / cpu_s),
                "load1": load1}
    finally:
        for pid in reversed(_tree(proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            for pid in _tree(proc.pid):
                os.kill(pid, 9)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("servers", nargs="+", help="floor | mlgate=<checkout>")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--path", default="/v1/models/breast-cancer:predict")
    parser.add_argument("--bodies", required=True, help="JSON lines for mlgate")
    parser.add_argument("--floor-bodies", default="", help="JSON lines for the floor ({'features': [...]})")
    parser.add_argument("--floor-model", default="", help="joblib of the harness's T model (the floor loads it)")
    parser.add_argument("--repository", required=True, help="model repository for mlgate")
    parser.add_argument("--port", type=int, default=18700)
    args = parser.parse_args()
    port = args.port
    for rep in range(args.reps):
        for spec in args.servers:
            port += 1
            print(json.dumps({"rep": rep, **run_one(spec, port, args)}), flush=True)
            time.sleep(1)


if __name__ == "__main__":
    main()
