"""Restore verification: restore a backup into scratch namespaces, check every object, measure the RTO, clean up."""
