"""Secrets: a memory-only store filled by a pushing sidecar, read through allowlists."""
