"""Opaque-handle routes: mint `<secret:…>` handles, list and revoke them, and resolve them
back to values for the caller that minted them (what `patina secrets run` does). Thin
adapters over the broker, which decides and audits.

Registered before the broker's `/secrets/{name}` route so that `handles` is not taken for
a secret name.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Response
from pydantic import BaseModel, Field

from service.errors import BadRequest, error_responses
from service.http.routers import api_router
from service.secrets.broker import Resolution
from service.secrets.deps import SecretsAccess
from service.secrets.handle_models import HandleInfo, MintRequest
from service.secrets.handles import HandleRecord, handle_id_of

# Each route takes SecretsAccess (the `secrets` scope) itself, as in secrets/routes.py.
router = api_router(tags=["secret handles"], responses=error_responses(401, 403))

MAX_RESOLVE = 256


class HandleList(BaseModel):
    handles: list[HandleInfo]


class ResolveRequest(BaseModel):
    """Handles to turn into values, as `<secret:ID>` or bare IDs."""

    handles: list[str] = Field(min_length=1, max_length=MAX_RESOLVE)


class ReferencesRequest(BaseModel):
    """Every reference of one `patina secrets run`: the caller's handles and secret names."""

    handles: list[str] = Field(
        default_factory=list, max_length=MAX_RESOLVE, description="`<secret:ID>` or bare IDs."
    )
    names: list[str] = Field(
        default_factory=list, max_length=MAX_RESOLVE, description="Secret names."
    )


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


def _handle_ids(texts: list[str]) -> list[str]:
    ids = []
    for index, text in enumerate(texts):
        handle_id = handle_id_of(text)
        if handle_id is None:
            raise BadRequest(f"handles[{index}] is not a <secret:…> handle")
        ids.append(handle_id)
    return ids


def _resolved(resolutions: list[Resolution]) -> ResolveResponse:
    return ResolveResponse(
        secrets=[
            ResolvedSecret(
                handle=r.handle, name=r.name, value=r.value.decode("utf-8", errors="replace")
            )
            for r in resolutions
        ]
    )


@router.post(
    "/secrets/handles",
    operation_id="secrets_handle_mint",
    status_code=201,
    responses=error_responses(400, 404, 503),
)
async def mint_handle(body: MintRequest, call: SecretsAccess) -> HandleInfo:
    """Mint an opaque handle for a secret the caller may read. The handle is bound to the
    caller: nobody else can resolve it. Give it to an agent instead of the value."""
    record = call.broker.mint_handle(call.caller, body.name, ttl_secs=body.ttl_secs, uses=body.uses)
    return _info(record)


@router.get("/secrets/handles", operation_id="secrets_handle_list")
async def list_handles(call: SecretsAccess) -> HandleList:
    """The caller's live handles and the names they stand for (never values)."""
    return HandleList(handles=[_info(r) for r in call.broker.handles_of(call.caller)])


@router.post(
    "/secrets/handles/resolve",
    operation_id="secrets_handle_resolve",
    responses=error_responses(400, 404, 422, 503),
)
async def resolve_handles(body: ResolveRequest, call: SecretsAccess) -> ResolveResponse:
    """Values of the caller's own handles, one use of each spent. 403 for a handle another
    caller minted, 404 for an unknown, expired or used-up one; all or nothing. Each value is
    read through the broker again, so the allowlist and the audit log apply now."""
    resolved = call.broker.resolve_handles(call.caller, _handle_ids(body.handles))
    return _resolved([Resolution(record.handle, record.name, value) for record, value in resolved])


@router.post(
    "/secrets/resolve",
    operation_id="secrets_resolve",
    responses=error_responses(400, 404, 422, 503),
)
async def resolve_references(body: ReferencesRequest, call: SecretsAccess) -> ResolveResponse:
    """Every reference of one `patina secrets run` in one request: the values of the
    caller's handles (one use of each spent), then of the named secrets, in the order
    asked. A named secret comes with a handle of the caller's (a live unlimited one, or a
    new one) to show in place of its value. 400 when nothing is asked; otherwise the same
    answers as reading each secret and resolving each handle."""
    if not body.handles and not body.names:
        raise BadRequest("nothing to resolve: give handles, names or both")
    return _resolved(
        call.broker.resolve(call.caller, handle_ids=_handle_ids(body.handles), names=body.names)
    )


@router.delete(
    "/secrets/handles/{handle_id}",
    operation_id="secrets_handle_revoke",
    status_code=204,
    responses=error_responses(400, 404),
)
async def revoke_handle(handle_id: str, call: SecretsAccess) -> Response:
    """Revoke one of the caller's handles now (the id is the hex inside `<secret:…>`)."""
    parsed = handle_id_of(handle_id)
    if parsed is None:
        raise BadRequest("not a handle id")
    call.broker.revoke_handle(call.caller, parsed)
    return Response(status_code=204)
