"""Lifeboat: serverless backup and disaster recovery for Kubernetes (layers in docs/architecture.md)."""
