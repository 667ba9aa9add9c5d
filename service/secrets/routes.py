"""Public secrets routes: list and read what the caller's allowlist names, and the Patina
session cache. Every response carries `Cache-Control: no-store` (the hardening middleware
sets it on every answer)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.errors import NotFound, error_responses
from service.http.routers import api_router
from service.secrets.cache import DEFAULT_TTL_SECS
from service.secrets.deps import SecretsAccess

# Each route takes SecretsAccess (its caller, with the `secrets` scope) itself: a
# router-level twin of that dependency would be solved a second time on every request.
router = api_router(tags=["secrets"], responses=error_responses(401, 403))


class SecretNames(BaseModel):
    """Names the caller may read (never values)."""

    names: list[str]


class SecretValue(BaseModel):
    name: str
    value: str


class CacheRequest(BaseModel):
    """The Patina client's session cache body."""

    secrets: dict[str, str] = Field(description="Name -> value, the caller's own secrets.")
    ttl_secs: int = Field(DEFAULT_TTL_SECS, ge=1, description="Capped by the server maximum.")


class CacheStored(BaseModel):
    status: str = "cached"
    ttl_secs: int = Field(description="The TTL applied after the server's cap.")


class CacheLocked(BaseModel):
    status: str = "locked"


# The apps try the reads early (app.CALLED_MOST); GET /secrets/cache (and the handles
# router's GET /secrets/handles) before /secrets/{name}, or `cache` would be taken for a
# secret name.


@router.get(
    "/secrets/cache",
    operation_id="secrets_cache_get",
    responses=error_responses(404),
)
async def cache_get(call: SecretsAccess) -> dict[str, str]:
    """The caller's cached secrets as a flat `{name: value}` map; 404 when none are cached
    or they expired. Each caller sees only its own cache."""
    values = call.broker.cache_get(call.caller)
    if values is None:
        raise NotFound("no cached secrets")
    return values


@router.get("/secrets", operation_id="secrets_list")
async def list_secrets(call: SecretsAccess) -> SecretNames:
    """The names of the loaded secrets the caller's allowlist lets it read. Never values."""
    return SecretNames(names=call.broker.names_for(call.caller))


@router.get(
    "/secrets/{name}",
    operation_id="secrets_read",
    responses=error_responses(400, 404),
)
async def read_secret(name: str, call: SecretsAccess) -> SecretValue:
    """One secret's value. 403 when the name is not in the caller's allowlist (whether or
    not it exists), 404 when it is allowed but not loaded. Every call is audited."""
    value = call.broker.read(call.caller, name)
    return SecretValue(name=name, value=value.decode("utf-8", errors="replace"))


@router.post(
    "/secrets/cache",
    operation_id="secrets_cache_put",
    responses=error_responses(400, 413, 422),
)
async def cache_put(body: CacheRequest, call: SecretsAccess) -> CacheStored:
    """Cache the caller's secrets for `ttl_secs` (default 600, capped by the server's
    `secrets.cache_max_ttl_secs`), replacing what the caller cached before."""
    ttl = call.broker.cache_put(call.caller, body.secrets, body.ttl_secs)
    return CacheStored(ttl_secs=ttl)


@router.post("/secrets/lock", operation_id="secrets_lock")
async def lock(call: SecretsAccess) -> CacheLocked:
    """Drop the caller's session cache now (its bytes are overwritten)."""
    call.broker.cache_lock(call.caller)
    return CacheLocked()
