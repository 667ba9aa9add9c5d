"""The broker as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from service.auth import ResourcesDep
from service.errors import ServiceBusy
from service.secrets.broker import SecretsBroker


async def get_broker(resources: ResourcesDep) -> SecretsBroker:
    """The running broker; 503 when the service was started without it."""
    broker = resources.secrets
    if broker is None:
        raise ServiceBusy("the secrets broker is not running")
    return broker


BrokerDep = Annotated[SecretsBroker, Depends(get_broker)]
