"""remo-broker's v2 wire protocol (NDJSON over Unix sockets): the admin socket's
`push-creds` / `clear-creds` / `status` and the per-project sockets' `get` / `ping` / `info`,
served by the same broker, policy and audit log as the HTTP routes."""
