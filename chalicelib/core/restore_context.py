"""What per-object restore rules know beyond the object itself: the options and facts about the whole selection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.volume_facts import collect_snapshot_facts

Obj = dict[str, Any]


@dataclass(frozen=True)
class RestoreContext:
    """What the rules need to know beyond the object itself: the options and facts about the whole selection."""

    options: RestoreOptions = field(default_factory=RestoreOptions)
    backup_id: str = ""
    # content name -> storage snapshot handle, as the manifest recorded them
    snapshot_handles: Mapping[str, str] = field(default_factory=dict)
    # (source namespace, claim) -> the VolumeSnapshot the claim is restored from
    snapshot_for_claim: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # (source namespace, snapshot) -> its VolumeSnapshotContent in the backup, if that can be recreated
    content_for_snapshot: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # (source namespace, name) of Services without selector: their Endpoints were written by hand
    selectorless_services: frozenset[tuple[str, str]] = frozenset()
    # source uids of the objects this restore recreates: references to these owners are kept and re-linked
    restored_uids: frozenset[str] = frozenset()

    @classmethod
    def from_objects(
        cls,
        objects: Iterable[tuple[Resource, Obj]],
        options: RestoreOptions,
        backup_id: str = "",
        snapshot_handles: Mapping[str, str] | None = None,
    ) -> RestoreContext:
        """Collect the cross-object facts from the objects selected for this restore."""
        objects = list(objects)
        handles = dict(snapshot_handles or {})
        for_claim, contents = collect_snapshot_facts(objects, handles, options.restore_pvcs_from_snapshots)
        selectorless = set()
        for resource, obj in objects:
            spec = obj.get("spec") or {}
            if (
                resource.group_resource == "services"
                and not spec.get("selector")
                and spec.get("type") != "ExternalName"
            ):
                meta = obj.get("metadata") or {}
                selectorless.add((meta.get("namespace") or "", meta.get("name") or ""))
        return cls(options, backup_id, handles, for_claim, contents, frozenset(selectorless))
