"""The broker and the secrets scope as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.auth import require_scope, resources_of
from service.principal import SCOPE_SECRETS, Principal
from service.secrets.broker import SecretsBroker


async def get_broker(request: Request) -> SecretsBroker:
    """The service's broker."""
    return resources_of(request).broker


BrokerDep = Annotated[SecretsBroker, Depends(get_broker)]
# Every public secrets route takes its caller through this (403 without the scope).
SecretsCaller = Annotated[Principal, Depends(require_scope(SCOPE_SECRETS))]
