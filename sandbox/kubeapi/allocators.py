"""Service cluster IPs (10.96.0.0/12) and node ports (30000-32767), allocated and released like the real server."""

from __future__ import annotations

import ipaddress
from typing import Any

from sandbox.kubeapi.errors import FieldError

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)
KUBERNETES_SERVICE_IP = "10.96.0.1"


class Allocators:
    """Cluster IPs and node ports in use. Callers hold the store lock."""

    def __init__(self) -> None:
        self.ips: set[str] = set()
        self.ports: set[int] = set()
        self._next_ip = int(SERVICE_CIDR.network_address) + 10  # the low addresses are kept for cluster services
        self._next_port = NODE_PORTS.start

    def _free_ip(self) -> str:
        for _ in range(SERVICE_CIDR.num_addresses):
            candidate = str(ipaddress.ip_address(self._next_ip))
            self._next_ip += 1
            if self._next_ip >= int(SERVICE_CIDR.broadcast_address):
                self._next_ip = int(SERVICE_CIDR.network_address) + 10
            if candidate not in self.ips:
                return candidate
        raise RuntimeError("service IP range exhausted")

    def _free_port(self) -> int:
        for _ in NODE_PORTS:
            candidate = self._next_port
            self._next_port = self._next_port + 1 if self._next_port + 1 < NODE_PORTS.stop else NODE_PORTS.start
            if candidate not in self.ports:
                return candidate
        raise RuntimeError("node port range exhausted")

    def assign(self, spec: dict[str, Any], old: dict[str, Any] | None, reserve: bool) -> list[FieldError]:
        """Fill clusterIP(s) and node ports of a Service spec; keep what `old` had, as updates do."""
        kind = spec.get("type", "ClusterIP")
        if kind == "ExternalName":
            return []
        errors: list[FieldError] = []
        old_ip = (old or {}).get("clusterIP")
        ip = spec.get("clusterIP") or old_ip
        if old_ip and ip != old_ip:
            errors.append(FieldError("spec.clusterIPs[0]", "Invalid", ip, "may not change once set"))
            return errors
        if ip and ip != "None" and ip != old_ip:
            if not _in_range(ip):
                detail = f"provided IP is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
                return [FieldError("spec.clusterIPs", "Invalid", [ip], detail)]
            if ip in self.ips:
                return [
                    FieldError(
                        "spec.clusterIPs",
                        "Invalid",
                        [ip],
                        "failed to allocate IP " + ip + ": provided IP is already allocated",
                    )
                ]
        if not ip:
            ip = self._free_ip()
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if reserve and ip != "None":
            self.ips.add(ip)
        if kind in ("NodePort", "LoadBalancer"):
            errors.extend(self._node_ports(spec, old, reserve))
        return errors

    def _node_ports(self, spec: dict[str, Any], old: dict[str, Any] | None, reserve: bool) -> list[FieldError]:
        old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in (old or {}).get("ports") or []}
        for i, port in enumerate(spec.get("ports") or []):
            previous = old_ports.get((port.get("port"), port.get("protocol")))
            wanted = port.get("nodePort") or previous
            if wanted and wanted != previous:
                if wanted not in NODE_PORTS:
                    return [
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "Invalid",
                            wanted,
                            "provided port is not in the valid range. The range of valid ports is 30000-32767",
                        )
                    ]
                if wanted in self.ports:
                    return [
                        FieldError(f"spec.ports[{i}].nodePort", "Invalid", wanted, "provided port is already allocated")
                    ]
            port["nodePort"] = wanted or self._free_port()
            if reserve:
                self.ports.add(port["nodePort"])
        return []

    def release(self, spec: dict[str, Any]) -> None:
        self.ips.discard(spec.get("clusterIP", ""))
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and port.get("nodePort"):
                self.ports.discard(port["nodePort"])


def _in_range(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in SERVICE_CIDR
    except ValueError:
        return False
