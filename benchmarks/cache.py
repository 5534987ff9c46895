"""Response cache: requests/s on repeated inputs with the manifest's [cache] on vs off, in the same run.

Two in-process apps (real lifespan, HTTP over httpx's ASGI transport, anonymous access, no rate limits, no
prediction log) over the same python model that takes ``--model-ms`` per call; ``--requests`` V2 requests,
``--concurrency`` at a time, cycling over ``--distinct`` different inputs (so all but the first of each are
repeats). Several interleaved rounds; medians.

    PYTHONPATH=src python benchmarks/cache.py [--requests 2000] [--distinct 10] [--model-ms 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from mlgate.app import create_app
from mlgate.logs import configure_logging
from mlgate.settings import Settings

MODEL = '''
import time

class Model:
    def predict(self, batch):
        time.sleep({seconds})
        return {{"y": batch["x"] * 2}}
'''


def _repo(root: Path, cache: bool, model_ms: float) -> Path:
    directory = root / ("on" if cache else "off") / "m"
    directory.mkdir(parents=True)
    (directory / "model.py").write_text(MODEL.format(seconds=model_ms / 1000))
    (directory / "model.toml").write_text(
        'name = "m"\nruntime = "python"\nartifact = "model.py"\n'
        + ("[cache]\nenabled = true\nttl_s = 3600\n" if cache else "")
        + '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n'
        '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    return directory.parent


async def _round(repo: Path, data: Path, requests: int, distinct: int, concurrency: int) -> float:
    app = create_app(Settings(model_repository=repo, data_dir=data, anonymous_models=["*"], prediction_log=False,
                              rate_limit_enabled=False, access_log=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            bodies = [{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [i]}]}
                      for i in range(distinct)]
            queue = iter(range(requests))
            started = time.perf_counter()

            async def loop() -> None:
                for i in queue:
                    response = await client.post("/v2/models/m/infer", json=bodies[i % distinct])
                    assert response.status_code == 200, response.text

            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return requests / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="mlgate-bench-cache-"))
    repos = {"on": _repo(root, True, args.model_ms), "off": _repo(root, False, args.model_ms)}
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(args.rounds):
        for mode in ("off", "on"):
            rates[mode].append(await _round(repos[mode], root / f"data-{mode}-{r}", args.requests, args.distinct,
                                            args.concurrency))
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(json.dumps({"bench": "cache", "requests": args.requests, "distinct": args.distinct,
                      "model_ms": args.model_ms, "concurrency": args.concurrency, "rps_cache_on": round(on, 1),
                      "rps_cache_off": round(off, 1), "ratio": round(on / off, 2)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--distinct", type=int, default=10)
    parser.add_argument("--model-ms", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    configure_logging("warning", "json")
    asyncio.run(main(parser.parse_args()))
