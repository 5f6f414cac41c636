import orjson

from chalicelib.core.nodeports import LAST_APPLIED, strip_allocated_node_ports, user_node_ports


def _service(meta: dict, ports: list) -> dict:
    return {"kind": "Service", "metadata": {"name": "web", **meta}, "spec": {"type": "NodePort", "ports": ports}}


PORTS = [{"port": 80, "protocol": "TCP", "nodePort": 30480}, {"port": 443, "protocol": "TCP", "nodePort": 31999}]


def test_last_applied_names_user_set_ports():
    applied = {"spec": {"ports": [{"port": 80, "nodePort": 30480}, {"port": 443}]}}
    svc = _service({"annotations": {LAST_APPLIED: orjson.dumps(applied).decode()}}, PORTS)
    assert user_node_ports(svc) == {(80, "TCP")}


def test_managed_fields_owner_of_node_port_counts():
    fields = {
        "f:spec": {
            "f:ports": {
                'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:nodePort": {}, "f:port": {}},
                'k:{"port":443,"protocol":"TCP"}': {".": {}, "f:port": {}},
            }
        }
    }
    svc = _service({"managedFields": [{"manager": "helm", "operation": "Update", "fieldsV1": fields}]}, PORTS)
    assert user_node_ports(svc) == {(80, "TCP")}


def test_no_record_means_allocated():
    assert user_node_ports(_service({}, PORTS)) == set()
    bad = _service({"annotations": {LAST_APPLIED: "{not json"}}, PORTS)
    assert user_node_ports(bad) == set()


def test_strip_keeps_only_user_set():
    spec = {"ports": [dict(p) for p in PORTS], "healthCheckNodePort": 32000}
    dropped = strip_allocated_node_ports(spec, {(80, "TCP")})
    assert dropped == [31999]
    assert spec["ports"][0]["nodePort"] == 30480
    assert "nodePort" not in spec["ports"][1]
    assert "healthCheckNodePort" not in spec
