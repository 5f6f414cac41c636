"""The restore request as it arrives over the signed API (pydantic, strict, unknown fields refused)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chalicelib.api.errors import InvalidRequest, MalformedRequest
from chalicelib.core.errors import CoreError
from chalicelib.core.ids import RestoreId
from chalicelib.core.policies import CLUSTER_NAME
from chalicelib.core.restore_options import RestoreOptions

RESTORE_ID_PATTERN = re.compile(r"^r-\d{8}T\d{6}Z-[0-9a-f]{8}$")
# A cluster is named by its registration (``lifeboat clusters add``); its credentials never travel in a request.
ClusterName = Annotated[str, Field(min_length=1, max_length=253, pattern=f"^{CLUSTER_NAME.pattern}$")]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def new_restore_id(now: datetime, entropy: str | None = None) -> RestoreId:
    """Sortable like backup ids, and a valid label value (restored objects carry it): r-20261122T101500Z-3fa9c2b1."""
    return RestoreId(f"r-{now.strftime('%Y%m%dT%H%M%SZ')}-{entropy if entropy is not None else secrets.token_hex(4)}")


class Source(BaseModel):
    """The newest restorable backup of a cluster (optionally of one policy)."""

    model_config = _STRICT

    cluster: ClusterName
    policy: str | None = None
    backup: Literal["latest"] = "latest"


class Options(BaseModel):
    """What to restore and how; validated again by ``RestoreOptions`` so the API and the CLI agree."""

    model_config = _STRICT

    namespace_mapping: dict[str, str] | list[str] | None = None
    include_namespaces: list[str] = Field(default_factory=list)
    exclude_namespaces: list[str] = Field(default_factory=list)
    include_resources: list[str] = Field(default_factory=list)
    exclude_resources: list[str] = Field(default_factory=list)
    label_selector: str = ""
    existing_policy: Literal["skip", "update"] = "skip"
    preserve_node_ports: bool = False
    restore_pvcs_from_snapshots: bool = True

    @model_validator(mode="after")
    def _valid_options(self) -> Options:
        self.to_options()
        return self

    def to_options(self, *, restore_id: str | None = None, dry_run: bool = False) -> RestoreOptions:
        data = self.model_dump()
        data.update(restore_id=restore_id, dry_run=dry_run)
        try:
            return RestoreOptions.from_dict(data)
        except CoreError as exc:
            raise ValueError(str(exc)) from exc


class RestoreRequest(BaseModel):
    """``backup_id`` (+ optional ``cluster``) or ``source`` names the backup; ``target_cluster`` is a registered
    cluster's name (an object, such as one carrying credentials, is refused)."""

    model_config = _STRICT

    backup_id: str | None = Field(default=None, min_length=1)
    cluster: ClusterName | None = None
    source: Source | None = None
    target_cluster: ClusterName
    options: Options = Field(default_factory=Options)
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_backup(self) -> RestoreRequest:
        if (self.backup_id is None) == (self.source is None):
            raise ValueError("name the backup with exactly one of backup_id or source")
        if self.cluster is not None and self.source is not None:
            raise ValueError("cluster goes with backup_id; with source, use source.cluster")
        return self

    def fingerprint(self) -> str:
        """SHA-256 of the request's canonical JSON: the same request with other whitespace or key order matches."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_request(body: bytes) -> RestoreRequest:
    """The request in ``body``: MalformedRequest (400) if it is not JSON, InvalidRequest (422) if it is not valid."""
    try:
        return RestoreRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedRequest("request body is not valid JSON") from exc
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        raise InvalidRequest("invalid restore request", errors=details) from exc
