"""HTTP layer shared by every listener: hardening middleware and core routes."""
