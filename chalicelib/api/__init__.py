"""The signed HTTP API (``/v1/restores``, ``/v1/backups``, ``/v1/policies``): callers, signature, models, routes."""
