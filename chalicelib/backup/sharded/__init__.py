"""Sharded backups: ``planner`` splits a large backup into shards, ``shard`` backs one up, ``join`` commits them.

``context`` holds what they share per process (plan, repository, index, client) and decides what comes next;
``checkpoints`` stores a shard's progress between invocations.
"""
