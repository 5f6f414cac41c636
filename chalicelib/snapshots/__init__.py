"""Snapshots beside the Kubernetes objects of a backup: etcd (self-managed control planes)."""

from __future__ import annotations
