"""Opaque-handle routes: mint `<secret:…>` handles, list and revoke them, and resolve them
back to values for the caller that minted them (what `patina secrets run` does).

Registered before the broker's `/secrets/{name}` route so that `handles` is not taken for
a secret name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from service.auth import resources_of
from service.errors import BadRequest, Forbidden, NotFound, ServiceBusy, error_responses
from service.secrets.deps import BrokerDep, SecretsCaller
from service.secrets.handles import HandleRecord, HandleStore, handle_id_of
from service.secrets.store import valid_name

# Each route takes SecretsCaller (the `secrets` scope) itself, as in secrets/routes.py.
router = APIRouter(tags=["secret handles"], responses=error_responses(401, 403))

NO_STORE = "no-store"
MAX_RESOLVE = 256


async def get_handles(request: Request) -> HandleStore:
    """The running handle store; 503 when the service was started without secrets."""
    handles = resources_of(request).handles
    if handles is None:
        raise ServiceBusy("secret handles are not available")
    return handles


HandlesDep = Annotated[HandleStore, Depends(get_handles)]


class MintRequest(BaseModel):
    """Which secret the handle stands for and how long it lives."""

    name: str = Field(description="Secret name the caller may read.", examples=["GITHUB_TOKEN"])
    ttl_secs: int | None = Field(
        None, ge=1, description="Lifetime (default secrets.handle_default_ttl_secs, capped)."
    )
    uses: int | None = Field(None, ge=1, description="Resolutions allowed; unlimited if unset.")


class HandleInfo(BaseModel):
    """A handle as its owner sees it (never a value)."""

    handle: str = Field(examples=["<secret:3f9a0c1d2e4b5a6978877665544332211>"])
    name: str
    expires_at: str = Field(description="UTC, ISO 8601.")
    uses_left: int | None = Field(description="Remaining resolutions; null when unlimited.")


class HandleList(BaseModel):
    handles: list[HandleInfo]


class ResolveRequest(BaseModel):
    """Handles to turn into values, as `<secret:ID>` or bare IDs."""

    handles: list[str] = Field(min_length=1, max_length=MAX_RESOLVE)


class ResolvedSecret(BaseModel):
    handle: str
    name: str
    value: str


class ResolveResponse(BaseModel):
    secrets: list[ResolvedSecret]


def _info(record: HandleRecord) -> HandleInfo:
    expires = datetime.fromtimestamp(record.expires_wall, UTC)
    return HandleInfo(
        handle=record.handle,
        name=record.name,
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        uses_left=record.uses_left,
    )


@router.post(
    "/secrets/handles",
    operation_id="secrets_handle_mint",
    status_code=201,
    responses=error_responses(400, 404, 503),
)
async def mint_handle(
    body: MintRequest,
    caller: SecretsCaller,
    broker: BrokerDep,
    handles: HandlesDep,
    response: Response,
) -> HandleInfo:
    """Mint an opaque handle for a secret the caller may read. The handle is bound to the
    caller: nobody else can resolve it. Give it to an agent instead of the value."""
    response.headers["Cache-Control"] = NO_STORE
    if not valid_name(body.name):
        raise BadRequest("invalid secret name: names must match ^[A-Za-z0-9_]{1,128}$")
    if not broker.may_read(caller, body.name):
        broker.audit.record("handle_mint", principal=caller.name, name=body.name, outcome="deny")
        raise Forbidden(f"secret {body.name} is not in the caller's allowlist")
    if body.name not in broker.store.current.names():
        raise NotFound(f"secret {body.name} is not loaded")
    ttl = body.ttl_secs or broker.config.handle_default_ttl_secs
    record = handles.mint(caller.name, body.name, ttl_secs=ttl, uses=body.uses)
    broker.audit.record(
        "handle_mint",
        principal=caller.name,
        name=body.name,
        outcome="allow",
        ttl_secs=min(ttl, handles.max_ttl_secs),
        uses=body.uses,
    )
    return _info(record)


@router.get("/secrets/handles", operation_id="secrets_handle_list")
async def list_handles(
    caller: SecretsCaller, handles: HandlesDep, response: Response
) -> HandleList:
    """The caller's live handles and the names they stand for (never values)."""
    response.headers["Cache-Control"] = NO_STORE
    return HandleList(handles=[_info(r) for r in handles.owned_by(caller.name)])


@router.post(
    "/secrets/handles/resolve",
    operation_id="secrets_handle_resolve",
    responses=error_responses(400, 404, 422, 503),
)
async def resolve_handles(
    body: ResolveRequest,
    caller: SecretsCaller,
    broker: BrokerDep,
    handles: HandlesDep,
    response: Response,
) -> ResolveResponse:
    """Values of the caller's own handles, one use of each spent. 403 for a handle another
    caller minted, 404 for an unknown, expired or used-up one; all or nothing. Each value is
    read through the broker again, so the allowlist and the audit log apply now."""
    response.headers["Cache-Control"] = NO_STORE
    ids = []
    for index, text in enumerate(body.handles):
        handle_id = handle_id_of(text)
        if handle_id is None:
            raise BadRequest(f"handles[{index}] is not a <secret:…> handle")
        ids.append(handle_id)
    records = handles.claim(caller.name, ids)
    resolved = []
    for record in records:
        value = broker.read(caller, record.name, via="handle")
        resolved.append(
            ResolvedSecret(
                handle=record.handle,
                name=record.name,
                value=value.decode("utf-8", errors="replace"),
            )
        )
    return ResolveResponse(secrets=resolved)


@router.delete(
    "/secrets/handles/{handle_id}",
    operation_id="secrets_handle_revoke",
    status_code=204,
    responses=error_responses(400, 404),
)
async def revoke_handle(handle_id: str, caller: SecretsCaller, handles: HandlesDep) -> Response:
    """Revoke one of the caller's handles now (the id is the hex inside `<secret:…>`)."""
    parsed = handle_id_of(handle_id)
    if parsed is None:
        raise BadRequest("not a handle id")
    handles.revoke(caller.name, parsed)
    return Response(status_code=204, headers={"Cache-Control": NO_STORE})
