"""Snapshots a backup takes besides its manifests: CSI VolumeSnapshots of its claims (``csi.py``)."""
