"""Scrubbing a child's stdout and stderr together, in one thread.

Each stream is scrubbed on its own, and a value split between them is caught too: when one
stream holds back the beginning of a value and the other's next output begins with the
rest (`printf %s "${T:0:9}"; printf %s "${T:9}" >&2`), both show the placeholder. Output
of one round of reads is written only after every stream of the round was examined, so
the order in which two ready pipes are read does not matter.
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.redaction.scrubber import (
    Pieces,
    Scrubber,
    ScrubStream,
    grow_pipe,
    keep_freed_buffers,
    write_pieces,
)

_CHUNK = 1 << 20


@dataclass
class _Channel:
    source: int
    sink: int
    stream: ScrubStream
    open: bool = True
    closed: bool = False
    broken: bool = False
    out: Pieces = field(default_factory=list)

    def write(self, selector: selectors.BaseSelector) -> None:
        pieces, self.out = self.out, []
        if self.broken or not pieces:
            return
        try:
            write_pieces(self.sink, pieces)
        except BrokenPipeError:
            # Our reader went away (`| head`): stop reading, so that closing our end gives
            # the child SIGPIPE, as it would get without us in between.
            self.broken = True
            self.close(selector)

    def close(self, selector: selectors.BaseSelector) -> None:
        if self.open:
            selector.unregister(self.source)
            self.open = False
        if not self.closed:
            os.close(self.source)
            self.closed = True


def pump(scrubber: Scrubber, pairs: Sequence[tuple[int, int]], *, chunk: int = _CHUNK) -> None:
    """Copy each (source, sink) pair of fds until every source reaches EOF, scrubbing on
    the way; closes the sources. Nothing touches disk."""
    keep_freed_buffers()
    with scrubber.parallel_search() as search, selectors.DefaultSelector() as selector:
        channels = []
        for source, sink in pairs:
            grow_pipe(source)
            channel = _Channel(source, sink, ScrubStream(scrubber, search))
            channels.append(channel)
            selector.register(source, selectors.EVENT_READ, channel)
        try:
            while any(channel.open for channel in channels):
                ready = [key.data for key, _ in selector.select()]
                _round(scrubber, channels, ready, selector, chunk)
        finally:
            for channel in channels:
                channel.close(selector)


def _round(
    scrubber: Scrubber,
    channels: list[_Channel],
    ready: list[_Channel],
    selector: selectors.BaseSelector,
    chunk: int,
) -> None:
    read: dict[int, bytes] = {}
    ended = []
    before = {id(channel): channel.stream.snapshot() for channel in channels}
    for channel in ready:
        data = os.read(channel.source, chunk)
        if data:
            read[id(channel)] = data
            channel.out.extend(channel.stream.feed_pieces(data))
        else:
            channel.close(selector)
            ended.append(channel)
    if not scrubber.empty:
        for channel in ready:
            fresh = read.get(id(channel))
            if fresh is None or before[id(channel)][0]:
                continue
            for other in channels:
                if other is channel or not other.stream.held:
                    continue
                joined = other.stream.joined_with(fresh)
                if joined is None:
                    continue
                placeholder, covered = joined
                other.out.append(placeholder)
                # Redo this stream's round: the placeholder, then the rest of its data.
                channel.stream.restore(before[id(channel)])
                channel.stream.passed_on(placeholder)
                channel.out = [placeholder, *channel.stream.feed_pieces(fresh[covered:])]
                break
    # A stream that ended this round is finished last: what it holds may be the beginning
    # of a value whose rest the other stream brought in the same round.
    for channel in ended:
        channel.out.extend(channel.stream.finish_pieces())
    for channel in channels:
        channel.write(selector)
