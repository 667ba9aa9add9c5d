"""`patina index` (writes the index directly) and `patina scry` (asks a running service)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast, get_args

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from service.cli.common import (
    ConfigOption,
    TargetOptions,
    fail,
    settings_or_exit,
    with_target_options,
)
from service.client import open_client, response_error
from service.knowledge.scry_models import Mode, ScryRequest
from service.mother.cli import mother_scry

if TYPE_CHECKING:
    from service.knowledge.embedder import TextEmbedder
    from service.knowledge.indexer import IndexReport
    from service.settings import Settings

STAGE_LABELS = {"files": "files", "commits": "commits", "vectors": "vectors"}


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("scry")(scry)


def index(
    paths: Annotated[list[Path], typer.Argument(help="Directories to index.", show_default=False)],
    repo: Annotated[
        str | None, typer.Option("--repo", help="Repository name (default: directory name).")
    ] = None,
    git: Annotated[bool, typer.Option("--git", help="Also index the git history.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for every chunk's vector (default), or stop once lexical search is "
            "ready and leave the vectors to a running service's background pass.",
        ),
    ] = True,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Then keep indexing each change to the directories (Ctrl-C ends)."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Index directories into the local index (the running service picks it up).

    Lexical search is ready as soon as the files are chunked; the vectors that semantic
    and hybrid search need follow, with their own progress bar. With --watch, every later
    change is indexed as it happens (its vectors too, unless --no-wait)."""
    # Imported here, not at the top: numpy and onnxruntime cost seconds at start-up, and
    # every other `patina` command (sidecar, health, secrets run) would pay for them.
    from service.knowledge import store
    from service.knowledge.embedder import Embedder
    from service.knowledge.embedding_pass import embed_pending
    from service.knowledge.indexer import Indexer
    from service.knowledge.model import ModelError
    from service.knowledge.service import index_path, service_paths

    settings = settings_or_exit(config)
    for path in paths:
        if not path.is_dir():
            fail(f"{path} is not a directory")
    err = Console(stderr=True)
    try:
        conn = store.open_index(index_path(settings))
    except store.StoreError as exc:
        fail(str(exc))
    reports: list[IndexReport] = []
    embedder: TextEmbedder | None = None
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as progress:
            # Lexical search first: no model is needed (or loaded) for it.
            for path in paths:
                bar = _Bar(progress, path.name)
                indexer = Indexer(
                    conn,
                    None,
                    settings.knowledge,
                    progress=bar.update,
                    service_paths=service_paths(settings),
                )
                report = indexer.index(path, repo=repo, git=git, embed=False)
                err.print(
                    f"{report.repo}: lexical search ready after {report.lexical_seconds:.1f}s"
                )
                reports.append(report)
            if wait:
                try:
                    with err.status("verifying and loading the embedding model"):
                        embedder = Embedder.from_settings(settings.knowledge, for_indexing=True)
                except ModelError as exc:
                    fail(str(exc))
                bar = _Bar(progress, "all")
                embedded = embed_pending(conn, embedder, progress=bar.update)
                reports[-1].chunks_embedded += embedded
                reports[-1].seconds += bar.seconds()
        unembedded = store.unembedded_count(conn)
    finally:
        conn.close()
    for report in reports:
        typer.echo(
            f"{report.repo}: {report.files_indexed} indexed, {report.files_unchanged} "
            f"unchanged, {report.files_deleted} removed, {report.files_skipped} skipped; "
            f"{report.chunks_embedded} chunks embedded, {report.commits_indexed} commits "
            f"({report.seconds:.1f}s)"
        )
        if report.secret_files:
            typer.echo(
                f"  left out {len(report.secret_files)} secret-bearing files (index one with "
                f"knowledge.secret_files_allow): {', '.join(report.secret_files[:20])}"
                + (" ..." if len(report.secret_files) > 20 else ""),
                err=True,
            )
        for note in report.notes:
            typer.echo(f"  note: {note}", err=True)
    if unembedded:
        typer.echo(
            f"{unembedded} chunks have no vector yet: lexical search covers them, hybrid and "
            "semantic search do not until a running service's background pass (or "
            "`patina index` without --no-wait) embeds them",
            err=True,
        )
    typer.echo(f"index: {index_path(settings)}")
    if watch:
        _watch(settings, embedder, paths, repo=repo)


def _watch(
    settings: Settings, embedder: TextEmbedder | None, paths: list[Path], *, repo: str | None
) -> None:
    """Index each change under `paths` until interrupted (vectors too, given an
    `embedder`)."""
    import signal
    import threading

    from service.knowledge import store
    from service.knowledge.indexer import Indexer
    from service.knowledge.service import index_path, service_paths
    from service.knowledge.watch import Batch, never_indexed, update_index, watch_roots

    roots = [p.resolve() for p in paths]
    repos = {root: repo or root.name for root in roots}
    conn = store.open_index(index_path(settings))
    indexer = Indexer(conn, embedder, settings.knowledge, service_paths=service_paths(settings))

    def apply(batch: Batch) -> None:
        report = update_index(indexer, batch, repo=repos[batch.root], embed=embedder is not None)
        if report.files_indexed or report.files_deleted:
            typer.echo(
                f"{report.repo}: {report.files_indexed} updated, {report.files_deleted} "
                f"removed; {report.chunks_embedded} chunks embedded ({report.seconds:.2f}s)"
            )

    # Ctrl-C and SIGTERM end the watch after the batch in progress, as they end the
    # service: handlers of our own, because a shell starts background jobs with SIGINT
    # ignored, and a KeyboardInterrupt raised mid-batch would only roll the batch back.
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        watch_roots(
            roots,
            apply,
            stop=stop,
            ignored=never_indexed(service_paths(settings)),
            force_polling=settings.knowledge.watch_polling,
            ready=lambda: typer.echo("watching for changes (Ctrl-C ends)", err=True),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        conn.close()


class _Bar:
    """One progress bar per stage (files, commits) of one indexed directory."""

    def __init__(self, progress: Progress, name: str) -> None:
        self.progress = progress
        self.name = name
        self.tasks: dict[str, TaskID] = {}
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            label = f"{self.name}: {STAGE_LABELS.get(stage, stage)}"
            self.tasks[stage] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


@with_target_options
def scry(
    query: Annotated[str, typer.Argument(help="Words or an identifier.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Results wanted.")] = 10,
    mode: Annotated[
        str, typer.Option("--mode", help="hybrid, lexical or semantic.", case_sensitive=False)
    ] = "hybrid",
    repo: Annotated[str | None, typer.Option("--repo", help="Only this repository.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="markdown, code, text or commit.")
    ] = None,
    path_prefix: Annotated[
        str | None, typer.Option("--path", help="Only paths starting with this.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")] = False,
    federate: Annotated[
        bool, typer.Option("--federate", help="Also ask the service's mother nodes.")
    ] = False,
    mother: Annotated[
        str | None, typer.Option("--mother", help="Ask this configured mother node directly.")
    ] = None,
    config: ConfigOption = None,
    *,
    target: TargetOptions,
) -> None:
    """Search the project through a running service (Unix socket, or --url over TLS)."""
    if mode not in get_args(Mode):
        fail(f"--mode must be hybrid, lexical or semantic, not {mode!r}")
    settings = settings_or_exit(config)
    endpoint = target.resolve(settings)
    request = ScryRequest(
        query=query,
        limit=limit,
        mode=cast(Mode, mode),
        repo=repo,
        kind=kind,
        path_prefix=path_prefix,
        federate=federate,
    )
    body = request.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    if mother is not None:
        # The node's own URL, token file and certificates, from the [[mothers]] settings.
        answer = mother_scry(settings, mother, body)
        if as_json:
            typer.echo(json.dumps(answer, indent=2))
        else:
            _print_table(answer, query)
        return
    try:
        with open_client(endpoint) as client:
            response = client.post("/api/scry", json=body)
    except (httpx.HTTPError, OSError) as exc:
        fail(f"cannot reach the service at {endpoint.describe()}: {exc}", code=1)
    if response.status_code != 200:
        fail(f"scry failed ({response.status_code}): {response_error(response)}", code=1)
    answer = response.json()
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    _print_table(answer, query)


def _print_table(answer: dict[str, Any], query: str) -> None:
    console = Console()
    if not answer["results"]:
        console.print(f"no results for {query!r}")
        return
    table = Table(title=f"{answer['count']} results ({answer['mode']})", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("score", justify="right")
    table.add_column("where", overflow="fold")
    table.add_column("found by", style="dim")
    table.add_column("content", overflow="ellipsis", max_width=80)
    for i, hit in enumerate(answer["results"], 1):
        where = f"{hit['repo']}:{hit['path']}:{hit['start_line']}-{hit['end_line']}"
        if hit.get("node"):
            where = f"[{hit['node']}] {where}"
        snippet = " ".join(hit["content"].split())[:200]
        table.add_row(str(i), f"{hit['score']:.3f}", where, ",".join(hit["modes"]), snippet)
    console.print(table)
