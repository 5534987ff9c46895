"""grpc_tls_cert / grpc_tls_key: the gRPC port speaks TLS with the configured certificate, and only TLS."""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlgate.protocols.grpc import grpc_service_pb2 as pb
from mlgate.protocols.grpc import grpc_service_pb2_grpc
from mlgate.settings import Settings
from tests.processes import free_port
from tests.secure import secure_app

pytestmark = pytest.mark.anyio


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_with_the_configured_certificate_and_no_plaintext(examples_repo: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    async with secure_app(examples_repo, grpc_port=port, grpc_tls_cert=cert, grpc_tls_key=key):
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
            stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        async with grpc.aio.insecure_channel(f"localhost:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as plaintext:
                await grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerLive(
                    pb.ServerLiveRequest(), timeout=5)
            assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_without_its_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="grpc_tls_cert and grpc_tls_key go together"):
        Settings(grpc_tls_cert=tmp_path / "cert.pem")
