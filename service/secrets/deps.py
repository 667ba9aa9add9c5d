"""The broker and the secrets scope as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.auth import CallerWith, resources_of
from service.principal import SCOPE_SECRETS, Principal
from service.resources import Resources
from service.secrets.broker import SecretsBroker


async def get_broker(request: Request) -> SecretsBroker:
    """The service's broker."""
    return resources_of(request).broker


BrokerDep = Annotated[SecretsBroker, Depends(get_broker)]


@dataclass(frozen=True, slots=True)
class SecretsCall:
    """A public secrets route's caller (it holds the `secrets` scope) and the broker."""

    caller: Principal
    broker: SecretsBroker


def _secrets_call(caller: Principal, resources: Resources) -> SecretsCall:
    return SecretsCall(caller, resources.broker)


# Every public secrets route takes its caller through this (403 without the scope).
SecretsAccess = Annotated[SecretsCall, Depends(CallerWith(SCOPE_SECRETS, _secrets_call))]
