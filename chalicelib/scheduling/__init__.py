"""Scheduling: backup policies, registered clusters, the dispatcher, and per-policy status (RPO)."""
