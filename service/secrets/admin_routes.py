"""Admin-socket routes: the sidecar replaces or clears the set and reads the service status.

Served only by the admin app, so none of these paths exists on the public socket or TCP.
The body of `PUT /admin/secrets` is parsed by hand: duplicate JSON keys are an error (a
generic parser would silently keep the last one) and no error message quotes the body.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from service import __version__
from service.auth import ResourcesDep, require_scope
from service.errors import BadRequest, PayloadTooLarge, error_responses
from service.http.routers import api_router
from service.principal import SCOPE_ADMIN, Principal
from service.resources import Resources
from service.secret_names import NAME_RULE, valid_name
from service.secrets.broker import SecretsBroker, iso_time
from service.secrets.deps import BrokerDep
from service.secrets.store import Snapshot

# Bumped when the sidecar <-> service contract changes incompatibly.
PROTOCOL_VERSION = 1

# One instance for the router's gate and the routes' parameter, so FastAPI solves it once.
_ADMIN = require_scope(SCOPE_ADMIN)
AdminCaller = Annotated[Principal, Depends(_ADMIN)]

router = api_router(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(_ADMIN)],
    responses=error_responses(403),
)


class PushResult(BaseModel):
    """The set now being served."""

    generation: int
    loaded_at: str | None
    count: int


class AdminStatus(BaseModel):
    """Service identity and the set being served. A new `boot_id` means the service
    restarted with an empty store: the sidecar pushes again."""

    version: str
    protocol_version: int
    uptime_secs: float
    boot_id: str
    generation: int
    loaded_at: str | None
    count: int


_PUSH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["secrets"],
                "additionalProperties": False,
                "properties": {
                    "secrets": {
                        "type": "object",
                        "description": "The whole set: name -> value. " + NAME_RULE + ".",
                        "additionalProperties": {"type": "string"},
                    }
                },
            }
        }
    },
}


class DuplicateKey(ValueError):
    """A JSON object holds the same key twice."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: a repeated key raises DuplicateKey (a generic
    parser would silently keep the last one); the message never quotes a value."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # A valid name is safe to show; anything else might be a misplaced value.
            raise DuplicateKey(f"duplicate key {key}" if valid_name(key) else "duplicate key")
        out[key] = value
    return out


def parse_push(body: bytes) -> dict[str, str]:
    """Validate a push body into name -> value, or raise BadRequest (never quoting it)."""
    try:
        data = json.loads(body, object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise BadRequest(f"invalid push: {exc}") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise BadRequest(f"invalid push: malformed JSON at {where}") from None
    except (UnicodeDecodeError, RecursionError):
        raise BadRequest("invalid push: body is not UTF-8 JSON") from None
    except ValueError:
        # Python's int() refuses more than 4,300 digits (CVE-2020-10735's limit); no
        # valid push holds a number at all.
        raise BadRequest("invalid push: a number in the body has too many digits") from None
    if not isinstance(data, dict) or set(data) != {"secrets"}:
        raise BadRequest('invalid push: expected {"secrets": {NAME: value, ...}}')
    secrets = data["secrets"]
    if not isinstance(secrets, dict):
        raise BadRequest('invalid push: "secrets" must be an object')
    for index, (name, value) in enumerate(secrets.items()):
        if not valid_name(name):
            raise BadRequest(f"invalid push: secret #{index + 1}: {NAME_RULE}")
        if not isinstance(value, str):
            raise BadRequest(f"invalid push: secret {name}: value must be a string")
    return secrets


def _result(snapshot: Snapshot) -> PushResult:
    return PushResult(
        generation=snapshot.generation,
        loaded_at=iso_time(snapshot.loaded_at),
        count=len(snapshot),
    )


async def _push(request: Request, caller: Principal, broker: SecretsBroker) -> PushResult:
    try:
        # The admin app's body cap is secrets.max_push_bytes, counted on the stream by the
        # hardening middleware, which raises PayloadTooLarge from inside this read.
        secrets = parse_push(await request.body())
    except (BadRequest, PayloadTooLarge) as exc:
        broker.reject_push(exc.message, principal=caller)
        raise
    # Off the event loop: the set is compiled for answer scrubbing as it is swapped in.
    return _result(await asyncio.to_thread(broker.replace, secrets, principal=caller))


@router.put(
    "/secrets",
    operation_id="admin_secrets_replace",
    openapi_extra={"requestBody": _PUSH_BODY},
    responses=error_responses(400, 413),
)
async def replace_secrets(request: Request, caller: AdminCaller, broker: BrokerDep) -> PushResult:
    """Replace the whole set atomically with `{"secrets": {NAME: value}}`. Names match
    `^[A-Za-z0-9_]{1,128}$`, values are strings, duplicate keys are refused, the body is
    capped (1 MiB). On any error the previous set keeps serving."""
    return await _push(request, caller, broker)


@router.delete("/secrets", operation_id="admin_secrets_clear")
async def clear_secrets(caller: AdminCaller, broker: BrokerDep) -> PushResult:
    """Drop every secret; values are overwritten once in-flight reads finish."""
    return _result(broker.clear(principal=caller))


@router.get("/status", operation_id="admin_status")
async def admin_status(resources: ResourcesDep, broker: BrokerDep) -> AdminStatus:
    """Version, protocol version, uptime, boot id and the set's generation and size."""
    return status_of(resources, broker)


def status_of(resources: Resources, broker: SecretsBroker) -> AdminStatus:
    status = broker.status()
    return AdminStatus(
        version=__version__,
        protocol_version=PROTOCOL_VERSION,
        uptime_secs=round(resources.uptime_secs, 3),
        boot_id=resources.boot_id,
        generation=status.generation,
        loaded_at=status.loaded_at,
        count=status.count,
    )
