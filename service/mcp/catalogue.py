"""The tool catalogue: names, argument schemas and descriptions written for a model. Both
transports (stdio and Streamable HTTP) serve this one catalogue; the names are stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.knowledge.chunk_models import MAX_NEIGHBOURS
from service.knowledge.scry_models import Mode, ScryRequest

SCRY = "scry"
SCRY_DETAIL = "scry_detail"
INDEX_STATUS = "index_status"
SECRETS_LIST = "secrets_list"
SECRET_HANDLE = "secret_handle"
SECRETS_RUN = "secrets_run"

# What a model sees first, once, before any tool.
INSTRUCTIONS = """\
patina-serve searches this project's code, docs, notes and git history, and lets you use \
secrets without seeing them. Start with `scry` (compact results, best first), then \
`scry_detail` on a result's id to read the whole chunk. Secret values never appear in any \
answer: they show as ${secret:NAME} or [REDACTED]. To use a secret, mint a handle with \
`secret_handle` and pass the handle, never a value."""

MAX_SCRY_RESULTS = 50


class _Args(BaseModel):
    # A misspelt argument is an error the model can correct, not one silently dropped.
    model_config = ConfigDict(extra="forbid")


class ScryArgs(_Args):
    query: str = Field(
        min_length=1,
        max_length=8192,
        description="What to find: words, a question, or an identifier such as "
        "`RetryBudget` or `compute_backoff_delay`.",
    )
    limit: int = Field(8, ge=1, le=MAX_SCRY_RESULTS, description="How many results (1-50).")
    mode: Mode | None = Field(
        None,
        description="hybrid (default): words and meaning together; lexical: exact words and "
        "identifiers; semantic: meaning only.",
    )
    repo: str | None = Field(None, max_length=200, description="Only this repository.")
    kind: str | None = Field(
        None, max_length=32, description="Only this kind: code, markdown, text or commit."
    )
    path_prefix: str | None = Field(
        None, max_length=4096, description="Only files whose path starts so, e.g. `src/`."
    )

    def request(self) -> ScryRequest:
        """The scry request the REST route would receive for these arguments."""
        return ScryRequest(
            query=self.query,
            limit=self.limit,
            mode=self.mode,
            repo=self.repo,
            kind=self.kind,
            path_prefix=self.path_prefix,
        )


class DetailArgs(_Args):
    id: int = Field(ge=1, description="The `id` of a scry result.")
    neighbours: int = Field(
        0,
        ge=0,
        le=MAX_NEIGHBOURS,
        description=f"Also this many chunks before and after it in its file (0-{MAX_NEIGHBOURS}).",
    )


class NoArgs(_Args):
    pass


SecretName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class HandleArgs(_Args):
    name: SecretName = Field(description="A name from secrets_list.")
    ttl_secs: int | None = Field(
        None, ge=1, description="Lifetime in seconds (the service's default and cap apply)."
    )
    uses: int | None = Field(None, ge=1, description="How many times it may be resolved.")


Arg = Annotated[str, StringConstraints(max_length=32 * 1024)]
EnvMapping = Annotated[str, StringConstraints(min_length=3, max_length=512)]


class RunArgs(_Args):
    command: list[Arg] = Field(
        min_length=1,
        max_length=256,
        description="The program and its arguments, as a list (no shell). Arguments may "
        "hold ${secret:NAME} or <secret:...> references, replaced by values when it starts.",
    )
    env: list[EnvMapping] = Field(
        default_factory=list,
        max_length=64,
        description='Variables to inject: "VAR=NAME" or "VAR=<secret:...>".',
    )
    cwd: str | None = Field(
        None, max_length=4096, description="Working directory (default: the server's)."
    )
    timeout_secs: float | None = Field(
        None, gt=0, description="Stop the command after this long (capped by the server)."
    )
    output_cap_bytes: int | None = Field(
        None, ge=1, description="Keep at most this much of stdout and of stderr (capped)."
    )


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what the model is told and the model its arguments must fit."""

    name: str
    description: str
    args: type[_Args]
    annotations: types.ToolAnnotations

    def tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.args.model_json_schema(),
            annotations=self.annotations,
        )


_READS = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)

SCRY_TOOL = ToolSpec(
    SCRY,
    "Search this project's code, docs, notes and commit history. Returns compact results, "
    "best first: `path:first-last` lines, score, the symbol the chunk defines (if any), a "
    "short snippet and an `id`. Call scry_detail with an id to read the whole chunk. Use an "
    "identifier as the query to find its definition; narrow with kind or path_prefix.",
    ScryArgs,
    _READS,
)
DETAIL_TOOL = ToolSpec(
    SCRY_DETAIL,
    "Read the whole chunk behind a scry result, by its `id`, optionally with `neighbours` "
    "chunks before and after it in the same file. An id unknown after a re-index: scry again.",
    DetailArgs,
    _READS,
)
STATUS_TOOL = ToolSpec(
    INDEX_STATUS,
    "The state of the project index: the current or last indexing run (paths, files and "
    "chunks written, errors) and how many chunks are searchable.",
    NoArgs,
    _READS,
)
LIST_TOOL = ToolSpec(
    SECRETS_LIST,
    "The names of the secrets you may use (never their values). Pass a name to "
    "secret_handle, or to secrets_run's env.",
    NoArgs,
    _READS,
)
HANDLE_TOOL = ToolSpec(
    SECRET_HANDLE,
    "Mint an opaque handle `<secret:...>` for a secret name. Write the handle wherever a "
    "command needs the secret (for example `patina secrets run --env TOKEN=<secret:...> -- "
    "cmd`, or secrets_run): it is turned into the value only when the command starts, only "
    "for you. The value itself is never returned.",
    HandleArgs,
    types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
)
RUN_TOOL = ToolSpec(
    SECRETS_RUN,
    "Run a command with secrets injected, and get its exit code and output, in which every "
    "secret value is replaced by its handle. `command` is an argument list (no shell); "
    '`env` injects variables, e.g. ["GITHUB_TOKEN=GITHUB_TOKEN"]; arguments may hold '
    "${secret:NAME} or <secret:...> references. Output is capped and the command is stopped "
    "at its timeout. Do not try to print or transform secrets: that defeats the scrubbing.",
    RunArgs,
    types.ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
)

# The order a model sees them in.
ALL_TOOLS = (SCRY_TOOL, DETAIL_TOOL, STATUS_TOOL, LIST_TOOL, HANDLE_TOOL, RUN_TOOL)


def offered(*, run: bool) -> tuple[ToolSpec, ...]:
    """The tools a server offers: all of them, secrets_run only when `run` is on."""
    return tuple(spec for spec in ALL_TOOLS if run or spec.name != SECRETS_RUN)
