"""Volume snapshots at backup time, the pure part: the policy's settings, which claims, names, and the manifest records.

A backup snapshots every PersistentVolumeClaim it holds (after the policy's include/exclude selectors), by a CSI
VolumeSnapshot or, for an EBS volume, by an EC2 snapshot of its own (``type: ebs``, see ``volume_ebs.py``), and records
one entry per claim in the manifest's ``volume_snapshots``, whatever happened to it: ``ready`` (with the snapshot,
its content, the storage ``snapshot_handle``, driver, class, restore size and ready time), ``failed`` (the error,
which makes the backup PartiallyFailed), ``not-snapshotable`` or ``excluded`` (with the reason). A claim is never
silently skipped.

A CSI snapshot is crash-consistent: it holds what the disk held at one instant, as after a power cut, and the
snapshots of a backup's claims are taken one after another, after its objects were listed. Application-consistent
data needs the application's cooperation (hooks that flush or freeze, or database dumps).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.core.errors import CoreError, InvalidPolicy
from chalicelib.core.scope import OWN_SNAPSHOT_LABEL
from chalicelib.core.selectors import parse_label_selector
from chalicelib.core.volume_ebs import IN_TREE_EBS_DRIVER, ebs_volume_id

NONE, CSI, EBS, AUTO = "none", "csi", "ebs", "auto"
MODES = (NONE, CSI, EBS, AUTO)
VOLUME_FIELDS = frozenset({"mode", "class", "include", "exclude", "ready_timeout"})
SELECTOR_FIELDS = frozenset({"namespace", "name", "labels"})
DEFAULT_READY_TIMEOUT_S = 1800
BACKUP_ID_LABEL = OWN_SNAPSHOT_LABEL  # on each VolumeSnapshot (and its content) a backup takes
CLAIM_ANNOTATION = "lifeboat.io/persistent-volume-claim"
# On a backup's VolumeSnapshotContent: the class's deletionPolicy, which the content itself no longer says (Retain).
DELETION_POLICY_ANNOTATION = "lifeboat.io/deletion-policy"
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
IN_TREE_VOLUMES = ("awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "cinder", "hostPath", "local", "nfs")

READY, PENDING, FAILED = "ready", "pending", "failed"
NOT_SNAPSHOTABLE, EXCLUDED = "not-snapshotable", "excluded"
SETTLED = frozenset({READY, FAILED, NOT_SNAPSHOTABLE, EXCLUDED})

Obj = dict[str, Any]


@dataclass(frozen=True)
class ClaimSelector:
    """Claims by namespace and name globs and a label selector; every part given must match."""

    namespace: str = "*"
    name: str = "*"
    labels: str = ""

    def matches(self, namespace: str, name: str, labels: Mapping[str, str] | None) -> bool:
        return (
            fnmatch.fnmatchcase(namespace, self.namespace)
            and fnmatch.fnmatchcase(name, self.name)
            and parse_label_selector(self.labels).matches(dict(labels or {}))
        )

    def to_dict(self) -> dict[str, str]:
        defaults = ClaimSelector()
        fields = ("namespace", "name", "labels")
        return {k: getattr(self, k) for k in fields if getattr(self, k) != getattr(defaults, k)}


@dataclass(frozen=True)
class VolumeSettings:
    """A policy's ``volumes``: mode, the snapshot class (one for all, or per driver), claim selectors, timeout."""

    mode: str = NONE
    snapshot_class: str | None = None
    classes: tuple[tuple[str, str], ...] = ()  # (driver, class), when the policy names a class per driver
    include: tuple[ClaimSelector, ...] = ()
    exclude: tuple[ClaimSelector, ...] = ()
    ready_timeout_s: int = DEFAULT_READY_TIMEOUT_S

    @property
    def enabled(self) -> bool:
        return self.mode != NONE

    def class_for(self, driver: str) -> str | None:
        """The class the policy names for ``driver``, if any."""
        return dict(self.classes).get(driver, self.snapshot_class)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode, "ready_timeout": self.ready_timeout_s}
        if self.classes:
            data["class"] = dict(self.classes)
        elif self.snapshot_class:
            data["class"] = self.snapshot_class
        if self.include:
            data["include"] = [s.to_dict() for s in self.include]
        if self.exclude:
            data["exclude"] = [s.to_dict() for s in self.exclude]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "volumes") -> VolumeSettings:
        settings, problems = parse_volumes(data, where)
        if settings is None:
            raise InvalidPolicy(problems)
        return settings


def parse_volumes(data: Any, where: str = "volumes") -> tuple[VolumeSettings | None, list[str]]:
    """Settings and no problems, or None and every problem found (each prefixed with ``where``)."""
    if data is None:
        return VolumeSettings(), []
    if not isinstance(data, Mapping):
        return None, [f"{where}: must be a mapping such as {{mode: csi, class: csi-snapclass}}"]
    problems: list[str] = []
    unknown = sorted(set(data) - VOLUME_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(VOLUME_FIELDS))})")
    mode = data.get("mode", NONE)
    if mode not in MODES:
        problems.append(f"{where}.mode: must be one of {', '.join(MODES)}; got {mode!r}")
    single, classes = _parse_class(data.get("class"), f"{where}.class", problems)
    include = _parse_selectors(data.get("include"), f"{where}.include", problems)
    exclude = _parse_selectors(data.get("exclude"), f"{where}.exclude", problems)
    timeout = data.get("ready_timeout", DEFAULT_READY_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        problems.append(f"{where}.ready_timeout: must be a positive number of seconds; got {timeout!r}")
    if problems:
        return None, problems
    settings = VolumeSettings(str(mode), single, classes, include, exclude, int(timeout))
    return settings, []


def _parse_class(value: Any, where: str, problems: list[str]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    if value is None:
        return None, ()
    if isinstance(value, str) and value:
        return value, ()
    pairs = value.items() if isinstance(value, Mapping) else ()
    if pairs and all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in pairs):
        return None, tuple(sorted((str(k), str(v)) for k, v in pairs))
    problems.append(f"{where}: must be a VolumeSnapshotClass name or a mapping driver -> class; got {value!r}")
    return None, ()


def _parse_selectors(value: Any, where: str, problems: list[str]) -> tuple[ClaimSelector, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"{where}: must be a list of {{namespace, name, labels}} selectors")
        return ()
    selectors = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not item or set(item) - SELECTOR_FIELDS:
            problems.append(f"{where}[{i}]: must be a mapping of namespace, name (globs) and labels (a selector)")
            continue
        if not all(isinstance(v, str) for v in item.values()):
            problems.append(f"{where}[{i}]: namespace, name and labels must be strings")
            continue
        try:
            parse_label_selector(item.get("labels", ""))
        except CoreError as exc:
            problems.append(f"{where}[{i}].labels: {exc}")
            continue
        selectors.append(ClaimSelector(item.get("namespace", "*"), item.get("name", "*"), item.get("labels", "")))
    return tuple(selectors)


# -- which claims, and how ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What a backup needs to know of one PersistentVolumeClaim and its volume."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    volume: str = ""  # the bound PersistentVolume, "" when unbound
    driver: str = ""  # the CSI driver of that volume, "" when it is not a CSI volume
    in_tree: str = ""  # the in-tree volume type (e.g. awsElasticBlockStore) when not CSI
    volume_id: str = ""  # the EBS volume id, when the volume is an EBS volume (CSI or in-tree)

    @classmethod
    def of(cls, pvc: Obj, pv: Obj | None) -> Claim:
        meta = pvc.get("metadata") or {}
        pv_spec = (pv or {}).get("spec") or {}
        driver = str((pv_spec.get("csi") or {}).get("driver") or "")
        in_tree = next((k for k in IN_TREE_VOLUMES if k in pv_spec), "")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            labels=dict(meta.get("labels") or {}),
            volume=str(((pvc.get("spec") or {}).get("volumeName")) or "") if pv is not None else "",
            driver=driver,
            in_tree=in_tree,
            volume_id=ebs_volume_id(pv_spec) if pv is not None else "",
        )


@dataclass(frozen=True)
class SnapshotClassInfo:
    name: str
    driver: str
    default: bool = False

    @classmethod
    def of(cls, obj: Obj) -> SnapshotClassInfo:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return cls(
            name=str((obj.get("metadata") or {}).get("name") or ""),
            driver=str(obj.get("driver") or ""),
            default=annotations.get(DEFAULT_CLASS_ANNOTATION) == "true",
        )


@dataclass(frozen=True)
class SnapshotCopy:
    """An EBS snapshot's copy in another region: its id there, or why the copy could not be started."""

    region: str
    snapshot_id: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, str]:
        data = {"region": self.region, "snapshot_id": self.snapshot_id, "error": self.error}
        return {k: v for k, v in data.items() if v}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotCopy:
        return cls(str(data.get("region", "")), str(data.get("snapshot_id", "")), str(data.get("error", "")))


@dataclass(frozen=True)
class VolumeRecord:
    """One claim's entry in the manifest's ``volume_snapshots``."""

    namespace: str
    pvc: str
    state: str
    type: str = CSI
    driver: str = ""
    snapshot_class: str = ""
    snapshot_name: str = ""
    content_name: str = ""
    snapshot_handle: str = ""
    restore_size: str = ""
    ready_at: str = ""
    error: str = ""
    reason: str = ""
    # The class's deletionPolicy, which retention honours when the backup expires. The content itself is switched to
    # Retain once ready, so deleting the namespace (or the VolumeSnapshot) does not delete the backup's data.
    deletion_policy: str = ""
    # EBS direct (type ebs): the volume, the region of the snapshot (snapshot_handle is its id), and its copies.
    volume_id: str = ""
    region: str = ""
    copies: tuple[SnapshotCopy, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type,
            "namespace": self.namespace,
            "pvc": self.pvc,
            "state": self.state,
            "driver": self.driver,
            "class": self.snapshot_class,
            "snapshot_name": self.snapshot_name,
            "content_name": self.content_name,
            "snapshot_handle": self.snapshot_handle,
            "restore_size": self.restore_size,
            "ready_at": self.ready_at,
            "error": self.error,
            "reason": self.reason,
            "deletion_policy": self.deletion_policy,
            "volume_id": self.volume_id,
            "region": self.region,
            "copies": [c.to_dict() for c in self.copies],
        }
        return {k: v for k, v in data.items() if v}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VolumeRecord:
        return cls(
            namespace=str(data.get("namespace", "")),
            pvc=str(data.get("pvc", "")),
            state=str(data.get("state", "")),
            type=str(data.get("type", CSI)),
            driver=str(data.get("driver", "")),
            snapshot_class=str(data.get("class", "")),
            snapshot_name=str(data.get("snapshot_name", "")),
            content_name=str(data.get("content_name", "")),
            snapshot_handle=str(data.get("snapshot_handle", "")),
            restore_size=str(data.get("restore_size", "")),
            ready_at=str(data.get("ready_at", "")),
            error=str(data.get("error", "")),
            reason=str(data.get("reason", "")),
            deletion_policy=str(data.get("deletion_policy", "")),
            volume_id=str(data.get("volume_id", "")),
            region=str(data.get("region", "")),
            copies=tuple(SnapshotCopy.from_dict(c) for c in data.get("copies") or () if isinstance(c, Mapping)),
        )


def snapshot_name(backup_id: str, namespace: str, claim: str) -> str:
    """The VolumeSnapshot a backup makes of a claim: the same on every delivery of the job, so a redelivered job
    finds the snapshot it made instead of making a second; a valid name (lowercase, <= 253) whatever the claim's."""
    digest = hashlib.sha256(f"{backup_id}/{namespace}/{claim}".encode()).hexdigest()[:10]
    stem = claim[:60].rstrip("-.")
    return f"lifeboat-{backup_id.lower()}-{stem}-{digest}"


def plan_claims(
    settings: VolumeSettings,
    backup_id: str,
    claims: Iterable[Claim],
    classes: Iterable[SnapshotClassInfo],
    *,
    ebs_region: str | None = None,
    copy_region: str | None = None,
) -> list[VolumeRecord]:
    """Per claim: PENDING with the snapshot to create (name, class, driver), or a settled record saying why not.

    ``ebs_region`` is where EBS direct snapshots are made (None: they cannot be); ``copy_region`` the region they are
    copied into. ``ebs`` mode snapshots every EBS claim with EC2. ``auto`` takes a CSI snapshot when a
    VolumeSnapshotClass serves the claim's driver, else snapshots an EBS claim with EC2 when a copy into another
    region is asked for (a replica region), else records the claim as not snapshot-able."""
    known = list(classes)
    records = []
    for claim in sorted(claims, key=lambda c: (c.namespace, c.name)):
        base = VolumeRecord(claim.namespace, claim.name, PENDING, driver=claim.driver)
        if not _included(settings, claim):
            records.append(replace(base, state=EXCLUDED, reason="excluded by the policy's volume selectors"))
            continue
        if settings.mode in (EBS, AUTO):
            ebs = _plan_ebs(settings, backup_id, claim, base, known, ebs_region, copy_region)
            if ebs is not None:
                records.append(ebs)
                continue
        problem = _unsnapshotable(claim)
        klass = _pick_class(settings, claim.driver, known) if not problem else None
        if not problem and klass is None:
            problem = f"no VolumeSnapshotClass for driver {claim.driver}"
        if problem or klass is None:
            # Asked for CSI snapshots of every claim, one that cannot be snapshotted is an error; in auto mode it
            # is recorded and the backup goes on.
            state = FAILED if settings.mode == CSI else NOT_SNAPSHOTABLE
            records.append(replace(base, state=state, error=problem if state == FAILED else "", reason=problem))
            continue
        name = snapshot_name(backup_id, claim.namespace, claim.name)
        records.append(replace(base, snapshot_class=klass, snapshot_name=name))
    return records


def _plan_ebs(
    settings: VolumeSettings,
    backup_id: str,
    claim: Claim,
    base: VolumeRecord,
    classes: list[SnapshotClassInfo],
    ebs_region: str | None,
    copy_region: str | None,
) -> VolumeRecord | None:
    """The EBS record of a claim, or None when ``auto`` leaves it to CSI."""
    problem = ""
    if not claim.volume:
        problem = "the claim is not bound to a PersistentVolume"
    elif not claim.volume_id:
        problem = f"volume {claim.volume} is not an EBS volume; EBS snapshots need one"
    elif not ebs_region:
        problem = "EBS direct snapshots are not configured (no EC2 region)"
    if settings.mode == AUTO:
        has_class = bool(claim.driver) and _pick_class(settings, claim.driver, classes) is not None
        if problem or has_class or not copy_region:
            return None
    if problem:
        return replace(base, type=EBS, state=FAILED, error=problem, reason=problem)
    return replace(
        base,
        type=EBS,
        driver=claim.driver or IN_TREE_EBS_DRIVER,
        snapshot_name=snapshot_name(backup_id, claim.namespace, claim.name),
        volume_id=claim.volume_id,
        region=str(ebs_region),
    )


def _included(settings: VolumeSettings, claim: Claim) -> bool:
    if settings.include and not any(s.matches(claim.namespace, claim.name, claim.labels) for s in settings.include):
        return False
    return not any(s.matches(claim.namespace, claim.name, claim.labels) for s in settings.exclude)


def _unsnapshotable(claim: Claim) -> str:
    if not claim.volume:
        return "the claim is not bound to a PersistentVolume"
    if not claim.driver:
        kind = f"an in-tree {claim.in_tree} volume" if claim.in_tree else "not a CSI volume"
        return f"volume {claim.volume} is {kind}; CSI snapshots need a CSI driver"
    return ""


def _pick_class(settings: VolumeSettings, driver: str, classes: list[SnapshotClassInfo]) -> str | None:
    """The policy's class for the driver, else the driver's default class, else its only class."""
    named = settings.class_for(driver)
    if named:
        return named
    of_driver = [c for c in classes if c.driver == driver]
    default = [c for c in of_driver if c.default]
    if len(default) == 1:
        return default[0].name
    return of_driver[0].name if len(of_driver) == 1 else None


def snapshot_body(record: VolumeRecord, backup_id: str) -> Obj:
    """The VolumeSnapshot to create for a PENDING record."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": record.snapshot_name,
            "namespace": record.namespace,
            "labels": {BACKUP_ID_LABEL: backup_id},
            "annotations": {CLAIM_ANNOTATION: record.pvc},
        },
        "spec": {"volumeSnapshotClassName": record.snapshot_class, "source": {"persistentVolumeClaimName": record.pvc}},
    }


def observe(record: VolumeRecord, snapshot: Obj | None, content: Obj | None, now: str) -> VolumeRecord:
    """A PENDING record updated from its VolumeSnapshot and VolumeSnapshotContent as they are now."""
    if record.state != PENDING:
        return record
    if snapshot is None:
        return replace(record, state=FAILED, error=f"VolumeSnapshot {record.namespace}/{record.snapshot_name} is gone")
    status = snapshot.get("status") or {}
    content_status = (content or {}).get("status") or {}
    error = (status.get("error") or {}).get("message") or (content_status.get("error") or {}).get("message")
    content_name = str(status.get("boundVolumeSnapshotContentName") or "")
    content_spec = (content or {}).get("spec") or {}
    driver = str(content_spec.get("driver") or record.driver)
    policy = record.deletion_policy or str(content_spec.get("deletionPolicy") or "")
    record = replace(record, content_name=content_name, driver=driver, deletion_policy=policy)
    if error:
        return replace(record, state=FAILED, error=str(error))
    handle = str(content_status.get("snapshotHandle") or "")
    if status.get("readyToUse") is True and handle:
        size = status.get("restoreSize") or content_status.get("restoreSize") or ""
        return replace(record, state=READY, snapshot_handle=handle, restore_size=str(size), ready_at=now)
    return record


def time_out(record: VolumeRecord, timeout_s: int, cause: str = "") -> VolumeRecord:
    """A record still PENDING when the wait is over; ``cause`` says why, when the wait knows (the cluster was
    unreachable)."""
    if record.state != PENDING:
        return record
    error = f"snapshot not ready after {timeout_s}s" + (f": {cause}" if cause else "")
    return replace(record, state=FAILED, error=error)


def all_settled(records: Iterable[VolumeRecord]) -> bool:
    return all(r.state in SETTLED for r in records)


def volume_errors(records: Iterable[VolumeRecord]) -> list[dict[str, str]]:
    """The manifest errors of failed claims (they make the backup PartiallyFailed), each naming its claim."""
    return [
        {
            "resource": "persistentvolumeclaims",
            "error": f"volume snapshot of {r.namespace}/{r.pvc} failed: {r.error}",
        }
        for r in records
        if r.state == FAILED
    ]
