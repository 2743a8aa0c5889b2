"""The image's TLS trust: CAs come from the hashed system directory, found on demand.

The image sets an empty SSL_CERT_FILE and SSL_CERT_DIR=/etc/ssl/certs so a default SSL
context does not parse the whole CA bundle when it is created (docker/Dockerfile.j2).
These tests show the trust store still works through the directory, for Python's
default context and for httpx's (which reads both variables itself), that creating a
context loads nothing, that the directory holds the system CAs, and that the S3 client
keeps its own complete bundle.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.container.conftest import run_in_image

pytestmark = pytest.mark.container

# Runs inside the image: a TLS server on loopback with the test's leaf certificate, and
# clients with Python's default context (aiohttp, urllib) and with httpx's (BentoML's
# HTTP clients), each built the way those libraries build it from the environment.
_HANDSHAKE = """
import json, socket, ssl, threading
import httpx
server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server.load_cert_chain("/certs/leaf.pem", "/certs/leaf.key")
listener = socket.create_server(("127.0.0.1", 0))
def serve():
    while True:
        connection, _ = listener.accept()
        try:
            with server.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass
threading.Thread(target=serve, daemon=True).start()
def handshake(client):
    try:
        with socket.create_connection(listener.getsockname()) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.recv(2).decode()
    except ssl.SSLCertVerificationError as exc:
        return "refused: " + exc.verify_message
answer = {}
for name, make in (("default", ssl.create_default_context), ("httpx", httpx.create_ssl_context)):
    client = make()
    answer[name] = {"x509_ca_at_creation": client.cert_store_stats()["x509_ca"],
                    "result": handshake(client)}
print(json.dumps(answer))
"""

_HASHED_DIRECTORY = """
import glob, json, os
links = glob.glob(os.path.join(os.environ["SSL_CERT_DIR"], "*.[0-9]"))
print(json.dumps({"cert_file": os.environ["SSL_CERT_FILE"], "hashed_cas": len(links)}))
"""

_BOTOCORE_BUNDLE = """
import json, os, ssl
from botocore.httpsession import where
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.load_verify_locations(where())
print(json.dumps({"bundle": where(), "cas": context.cert_store_stats()["x509_ca"]}))
"""


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_test_pki(folder: Path) -> Path:
    """A throwaway CA and a leaf for `localhost` it signed; returns the CA's PEM file."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("wineq test CA"))
        .issuer_name(_name("wineq test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for path in folder.iterdir():
        path.chmod(0o644)  # the image's non-root user reads them
    folder.chmod(0o755)
    return ca_file


def _subject_hash(ca_file: Path) -> str:
    """OpenSSL's file name for a CA in a hashed directory (what `openssl rehash` makes)."""
    return subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(ca_file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _run_in_image(image: str, script: str, *mounts: str) -> dict[str, object]:
    result = run_in_image(image, "python", "-c", script, mounts=mounts)
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("pki")
    ca_file = _write_test_pki(folder)
    return folder, _subject_hash(ca_file)


def test_a_ca_in_the_hashed_directory_verifies_a_server(
    service_image: str, test_pki: tuple[Path, str]
) -> None:
    folder, subject_hash = test_pki
    answer = _run_in_image(
        service_image,
        _HANDSHAKE,
        f"{folder}:/certs:ro",
        f"{folder / 'ca.pem'}:/etc/ssl/certs/{subject_hash}.0:ro",
    )
    for client in ("default", "httpx"):
        assert answer[client] == {"x509_ca_at_creation": 0, "result": "ok"}, answer
        # x509_ca 0: found when the handshake needed it, not parsed when the context was made.


def test_a_ca_outside_the_trust_store_is_refused(
    service_image: str, test_pki: tuple[Path, str]
) -> None:
    folder, _ = test_pki
    answer = _run_in_image(service_image, _HANDSHAKE, f"{folder}:/certs:ro")
    for client in ("default", "httpx"):
        assert str(answer[client]["result"]).startswith("refused: "), answer  # type: ignore[index]


def test_the_hashed_directory_holds_the_system_cas(service_image: str) -> None:
    answer = _run_in_image(service_image, _HASHED_DIRECTORY)
    assert answer["cert_file"] == ""
    assert int(str(answer["hashed_cas"])) > 100, answer


def test_the_s3_client_keeps_its_own_complete_ca_bundle(service_image: str) -> None:
    answer = _run_in_image(service_image, _BOTOCORE_BUNDLE)
    assert answer["bundle"] != "/dev/null"
    assert int(str(answer["cas"])) > 100, answer
