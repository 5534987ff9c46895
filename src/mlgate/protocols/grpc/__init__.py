"""The KServe V2 Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), with health
checking and server reflection.

``grpc_service.proto`` is the service; ``grpc_service_pb2*`` are generated from it by ``make grpc``
(``scripts/grpc_generate.py``). ``service`` implements it on the data plane and the security entry point,
``codec`` converts its messages through the V2 codec, ``errors`` maps mlgate's errors to gRPC statuses,
``health`` answers ``grpc.health.v1``, and ``server`` runs it all (``serve_grpc``) on ``grpc_port``.
"""

from mlgate.protocols.grpc.server import serve_grpc

__all__ = ["serve_grpc"]
