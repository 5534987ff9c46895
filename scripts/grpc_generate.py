"""Generate the Python modules of mlgate's gRPC service from its .proto, with grpcio-tools (``make grpc``).

    python scripts/grpc_generate.py            # rewrite src/mlgate/protocols/grpc/grpc_service_pb2*.py(i)
    python scripts/grpc_generate.py OUT_DIR    # write them under OUT_DIR instead (the freshness test does)

The messages are built into a descriptor pool of their own rather than protobuf's default pool: the spec's
package (``inference``) is also what tritonclient's generated modules define, and protobuf refuses a second
file defining the same names in one pool, so the default pool would make mlgate and tritonclient.grpc
impossible to import in one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PROTO = "mlgate/protocols/grpc/grpc_service.proto"
GENERATED = ("grpc_service_pb2.py", "grpc_service_pb2.pyi", "grpc_service_pb2_grpc.py")
_DEFAULT_POOL = "_descriptor_pool.Default()"
_OWN_POOL = "_descriptor_pool.DescriptorPool()"


def generate(out: Path) -> list[Path]:
    """Run protoc (grpcio-tools) on the proto into ``out``; returns the generated files' paths."""
    from grpc_tools import protoc  # the dev tool, not a runtime dependency

    out.mkdir(parents=True, exist_ok=True)
    code = protoc.main(["protoc", f"-I{SRC}", f"--python_out={out}", f"--pyi_out={out}",
                        f"--grpc_python_out={out}", str(SRC / PROTO)])
    if code != 0:
        raise SystemExit(f"protoc failed with exit status {code}")
    folder = out / Path(PROTO).parent
    messages = folder / "grpc_service_pb2.py"
    text = messages.read_text()
    if text.count(_DEFAULT_POOL) != 1:
        raise SystemExit(f"{messages}: expected one {_DEFAULT_POOL}; protoc's output changed shape")
    messages.write_text(text.replace(_DEFAULT_POOL, _OWN_POOL))
    return [folder / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC):
        print(path)
