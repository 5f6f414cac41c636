"""Shared test code: repositories built by the product's writer, objects, resources, clocks, certificates, ports."""
