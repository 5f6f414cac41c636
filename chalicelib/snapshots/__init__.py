"""Snapshots a backup takes besides its objects: CSI VolumeSnapshots of its claims (``csi.py``), etcd (``etcd.py``)."""

from __future__ import annotations
