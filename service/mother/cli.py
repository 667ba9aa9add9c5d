"""`patina scry --mother NAME`: ask one configured mother node directly from the CLI, with
the same client (URL, token file, CA, client certificate) the service uses."""

from __future__ import annotations

import asyncio
from typing import Any

from service.cli.common import fail
from service.errors import StartupError
from service.http.wire import error_message
from service.mother.client import MotherClient, NodeFailure, describe_failure
from service.mother.config import MotherNode
from service.settings import Settings


def find_mother(settings: Settings, name: str) -> MotherNode:
    """The `[[mothers]]` entry called `name`, or exit 2 listing the known names."""
    for node in settings.mothers:
        if node.name == name:
            return node
    known = ", ".join(node.name for node in settings.mothers) or "none configured"
    fail(f"no mother node named {name!r} in the settings ({known})")


async def _post(node: MotherNode, body: dict[str, Any]) -> tuple[int, Any]:
    client = MotherClient.open(node)
    try:
        return await client.post_json("/api/scry", body, hops=0)
    finally:
        await client.aclose()


def mother_scry(settings: Settings, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to the mother's /api/scry; its JSON answer, or exit with its error."""
    node = find_mother(settings, name)
    try:
        status, answer = asyncio.run(_post(node, body))
    except StartupError as exc:
        fail(str(exc))
    except TimeoutError:
        fail(f"mother {name} at {node.url}: no answer within {node.timeout_ms} ms", code=1)
    except NodeFailure as exc:
        fail(f"cannot reach mother {name} at {node.url}: {describe_failure(exc)}", code=1)
    if status != 200 or not isinstance(answer, dict):
        said = error_message(answer) or "no JSON answer"
        fail(f"scry on mother {name} failed ({status}): {said}", code=1)
    return answer
