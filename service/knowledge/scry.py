"""The one scry entry point. The `/api/scry` route, mother nodes (through that route), the
CLI (through the route) and MCP tools all call `Scry.answer`; nothing else runs a search.

It decides between this node's index and a federated fan-out, embeds the query once for
every node that takes part, runs the local search under the query runner's gate and
deadline, builds the answer, and scrubs it: no answer (local, federated, or given to a
mother) leaves with a value the secrets broker holds (see secrets/answers.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol, TypeVar

from pydantic import BaseModel

from service.errors import NotFound
from service.knowledge.query_vector import decode, encode
from service.knowledge.scry_models import ScryRequest, ScryResponse, ScryResult
from service.knowledge.search import Hit, Query
from service.knowledge.service import KnowledgeService
from service.mother.federation import Federation
from service.mother.hops import may_federate
from service.principal import Principal
from service.query_runner import QueryRunner

M = TypeVar("M", bound=BaseModel)


class TextScrubber(Protocol):
    """Replaces secret values in texts with placeholders chosen for the caller."""

    def scrub(self, texts: list[str], caller: Principal) -> list[str]:
        """The texts scrubbed; the very same list when none holds a value."""
        ...


class Scry:
    """Search this node's index, and its mother nodes when asked."""

    def __init__(
        self,
        *,
        knowledge: KnowledgeService | None,
        federation: Federation,
        queries: QueryRunner,
        max_limit: int,
        scrubber: TextScrubber,
    ) -> None:
        self.knowledge = knowledge
        self.federation = federation
        self.queries = queries
        self.max_limit = max_limit
        self.scrubber = scrubber

    async def answer(
        self, request: ScryRequest, *, caller: Principal, hops: int = 0
    ) -> ScryResponse:
        """The answer to one scry for `caller`. `hops` counts the federating nodes the
        request already passed through (0 from a user); it federates only below the hop
        limit. Every text of the answer is scrubbed of the broker's values for `caller`.

        404 when this node has no index and the request does not federate, 400 for an
        unknown mother or a malformed query vector, 503 when the gate is full, 504 past
        the deadline (the search is stopped)."""
        mode = request.resolved_mode
        if not (request.federate and may_federate(hops)):
            results = await self._search(request)
            answer = ScryResponse(results=results, count=len(results), mode=mode)
        else:
            request = await self._with_query_vector(request)
            local = (lambda: self._search(request)) if self.knowledge is not None else None
            results, nodes = await self.federation.scry(request, hops=hops, local=local)
            answer = ScryResponse(results=results, count=len(results), mode=mode, nodes=nodes)
        if self.knowledge is not None:
            readiness = self.knowledge.readiness()
            answer.modes_available = list(readiness.modes_available)
            answer.semantic_coverage = readiness.semantic_coverage
        return scrub_answer(answer, self.scrubber, caller)

    async def _search(self, request: ScryRequest) -> list[ScryResult]:
        """This node's results, best first."""
        knowledge = self.knowledge
        if knowledge is None:
            raise NotFound("knowledge search is disabled on this service")
        query = _query_of(request, max_limit=self.max_limit)
        if request.query_vector is not None and query.mode != "lexical":
            vector = decode(request.query_vector, model=knowledge.model_fingerprint)
            query = dataclasses.replace(query, vector=vector)
        hits = await self.queries.run(lambda cancel: knowledge.scry(query, cancel))
        return [_result(hit) for hit in hits]

    async def _with_query_vector(self, request: ScryRequest) -> ScryRequest:
        """The request with its query's embedding, computed once here for every node that
        takes part (they would otherwise each embed the same text on their own CPU)."""
        knowledge = self.knowledge
        if knowledge is None or request.resolved_mode == "lexical" or request.query_vector:
            return request
        vector = await self.queries.run(lambda cancel: knowledge.embed_query(request.query, cancel))
        sent = encode(vector, model=knowledge.model_fingerprint)
        return request.model_copy(update={"query_vector": sent})


def scrub_answer(answer: ScryResponse, scrubber: TextScrubber, caller: Principal) -> ScryResponse:
    """The answer with every free text (each result's fields, each node's error) scrubbed
    for `caller`; the answer itself when nothing in it holds a value."""
    texts = [text for result in answer.results for text in model_texts(result)]
    texts += [status.error for status in answer.nodes or () if status.error]
    scrubbed = scrubber.scrub(texts, caller)
    if scrubbed is texts:
        return answer
    replacements = iter(scrubbed)
    results = [with_model_texts(result, replacements) for result in answer.results]
    nodes = answer.nodes and [
        status.model_copy(update={"error": next(replacements)}) if status.error else status
        for status in answer.nodes
    ]
    return answer.model_copy(update={"results": results, "nodes": nodes})


def _query_of(request: ScryRequest, *, max_limit: int) -> Query:
    return Query(
        text=request.query,
        mode=request.resolved_mode,
        limit=min(request.limit, max_limit),
        min_score=request.min_score,
        repo=None if request.all_repos else request.repo,
        kind=request.kind,
        path_prefix=request.path_prefix or None,
    )


def _result(hit: Hit) -> ScryResult:
    chunk = hit.chunk
    return ScryResult(
        id=chunk.id,
        content=chunk.content,
        score=round(hit.score, 6),
        event_type=chunk.event_type,
        source_id=chunk.source_id,
        timestamp=chunk.timestamp,
        repo=chunk.repo,
        path=chunk.path,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        kind=chunk.kind,
        modes=list(hit.modes),
        symbols=list(chunk.symbols),
    )


def model_texts(model: BaseModel) -> list[str]:
    """Every string of a model's fields, lists of strings included, in field order (so a
    field added later, such as a snippet, is scrubbed too)."""
    out: list[str] = []
    for _name, value in model:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(item for item in value if isinstance(item, str))
    return out


def with_model_texts(model: M, texts: Iterator[str]) -> M:
    """`model` with its strings, in `model_texts` order, taken from `texts`."""
    update: dict[str, object] = {}
    for name, value in model:
        if isinstance(value, str):
            update[name] = next(texts)
        elif isinstance(value, list):
            update[name] = [next(texts) if isinstance(item, str) else item for item in value]
    return model.model_copy(update=update)
