"""A remote node to federate scry with (`[[mothers]]` in the TOML settings file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

# The label of this node's own results in a federated answer; no mother may take it.
LOCAL_NODE = "local"


class MotherNode(BaseModel):
    """One remote node: its URL and the files that authenticate us to it.

    The token and key files are read once, when the service (or the CLI) opens its clients;
    their contents never appear in logs, errors or reprs."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Label of its results.")
    url: str = Field(description="https://host:port or unix:///path/to/serve.sock")
    token_file: Path | None = Field(None, description="Bearer token for https:// nodes.")
    ca_file: Path | None = Field(None, description="CA that signed the node's certificate.")
    client_cert: Path | None = Field(None, description="Our certificate (mutual TLS).")
    client_key: Path | None = Field(None, description="Its private key (mutual TLS).")
    timeout_ms: int = Field(1500, ge=1, le=600_000, description="Deadline for this node.")
    service_uid: int | None = Field(
        None,
        ge=0,
        description="unix:// nodes: the uid serving the socket (default: ours or the "
        "socket directory's owner); any other peer is refused.",
    )

    @model_validator(mode="after")
    def _check(self) -> MotherNode:
        if self.name == LOCAL_NODE:
            raise ValueError(f"mother name {LOCAL_NODE!r} is reserved for this node's results")
        if self.url.startswith("unix://"):
            if not self.url.removeprefix("unix://").startswith("/"):
                raise ValueError("a unix:// mother URL needs an absolute socket path")
        elif self.url.startswith("https://"):
            # Every TCP route but /health needs a bearer token; plain http is not offered.
            if self.token_file is None:
                raise ValueError(f"mother {self.name!r}: an https:// node needs token_file")
        else:
            raise ValueError(f"mother {self.name!r}: url must start with https:// or unix://")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError(f"mother {self.name!r}: client_key without client_cert")
        return self

    @property
    def socket_path(self) -> Path | None:
        """The socket of a unix:// node, else None."""
        if self.url.startswith("unix://"):
            return Path(self.url.removeprefix("unix://"))
        return None

    @property
    def timeout(self) -> float:
        return self.timeout_ms / 1000
