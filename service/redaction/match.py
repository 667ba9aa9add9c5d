"""Finding secret forms in a window of output, and what must be held back for more.

The engine (engines.py) searches only each form's first ANCHOR bytes, so its
database and its work do not grow with a secret's length; a hit is then compared with the
whole form (memcmp). Matches come from the views of the window, each mapped back to output
offsets: the text view (views.py) with every escape decoded, the output as it is near
escapes, the one-kind views (only one kind of escape decoded: for a secret holding escapes
of its own) and the dump view (dumps.py). Among all of them the leftmost wins, then the
longest, then the first secret listed.

While more output may follow, everything from the earliest point that could still become
a match is held back:

* a suffix of a view that is a proper prefix of a form: an anchor hit whose form runs past
  the end, or, for suffixes shorter than an anchor, a binary search in the sorted anchors;
* an escape cut off by the end (`%4`, `\\u00`, `&am`);
* an unfinished line that may still become a dump line.

No set of prefixes is built: memory is the forms themselves plus one anchor per form.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from itertools import accumulate
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from service.redaction.dumps import dump_segments, may_become_dump_line
from service.redaction.engines import Engine, Finder, build_engine
from service.redaction.forms import MIN_FORM_LEN, Form
from service.redaction.lines import Lines, scan_lines
from service.redaction.nearby import as_is_regions, text_bytes_before
from service.redaction.views import Escapes, TextView, partial_escape_start, remove_breaks

# Bytes of a form the engine searches; the rest is compared at a hit. Long enough that a
# hit is rare in ordinary output, short enough that the engine's tables stay small.
ANCHOR = 32
# Length of the anchor beginnings kept in a set (MIN_FORM_LEN: no anchor is shorter).
_HEAD = MIN_FORM_LEN
# Bytes that begin an escape (views.py): where the as-is view can differ from the decoded.
_INTRODUCERS = (b"%", b"\\", b"&")


class Match(NamedTuple):
    """output[start:end] is replaced by the placeholder of secret `owner`."""

    start: int
    end: int
    owner: int


class FormSet:
    """The forms of every secret, compiled: each distinct form text once (owned by the
    first secret listed that has it), its anchor, and the engine over the anchors."""

    def __init__(self, forms: Sequence[Iterable[Form]], *, engine: str = "auto") -> None:
        texts: list[bytes] = []
        owners: list[int] = []
        exacts: list[bytes | None] = []
        seen: set[bytes] = set()
        for owner, owned in enumerate(forms):
            for form in owned:
                if form.text not in seen:
                    seen.add(form.text)
                    texts.append(form.text)
                    owners.append(owner)
                    exacts.append(form.exact)
        del seen
        self.texts = texts
        self.owners = owners
        self.exacts = exacts
        anchor_index: dict[bytes, int] = {}
        members: list[list[int]] = []
        for index, text in enumerate(texts):
            anchor = text[:ANCHOR]
            slot = anchor_index.setdefault(anchor, len(members))
            if slot == len(members):
                members.append([])
            members[slot].append(index)
        self.anchors = list(anchor_index)
        self.anchor_lengths = [len(anchor) for anchor in self.anchors]
        self.members = members
        # How far before an escape a match covering it may begin: the furthest escape
        # introducer inside a form, and at least an anchor (a match starting inside it).
        self.introducer_reach = max(
            [ANCHOR, *(max(text.rfind(mark) for mark in _INTRODUCERS) + 1 for text in texts)]
        )
        # The kinds of escapes (their introducers) that some form holds as its own text:
        # where output holds those and another kind, the one-kind views are searched too.
        self.escape_kinds = frozenset(
            kind
            for text in texts
            if any(mark in text for mark in _INTRODUCERS)
            for kind in Escapes(text).kinds
        )
        # Sorted anchors and whether some form runs past each: a suffix shorter than an
        # anchor is a proper prefix of a form when it begins an anchor that is longer than
        # it, or that a longer form continues.
        extends = {
            anchor: any(len(texts[i]) > len(anchor) for i in group)
            for anchor, group in zip(self.anchors, members, strict=True)
        }
        self._sorted = sorted(self.anchors)
        self._extends = [extends[anchor] for anchor in self._sorted]
        self._exacts_sorted = sorted({e for e in exacts if e is not None})
        # The anchors' first bytes (every form is at least that long): a suffix that
        # begins otherwise begins no form, found without a binary search.
        self._heads = {anchor[:_HEAD] for anchor in self.anchors}
        self.max_anchor = max((len(a) for a in self.anchors), default=0)
        self.engine: Engine = build_engine(self.anchors, engine)

    def __repr__(self) -> str:
        return f"FormSet(forms={len(self.texts)}, engine={self.engine.name})"

    def begins_form(self, suffix: bytes) -> bool:
        """Whether `suffix` (shorter than ANCHOR) is a proper prefix of some form."""
        index = bisect_left(self._sorted, suffix)
        for probe in (index, index + 1):
            if probe < len(self._sorted):
                anchor = self._sorted[probe]
                if anchor.startswith(suffix) and (
                    len(anchor) > len(suffix) or self._extends[probe]
                ):
                    return True
        return False

    def begins_exact(self, text: bytes) -> bool:
        """Whether `text` is a prefix of a value with line breaks of its own."""
        index = bisect_left(self._exacts_sorted, text)
        return index < len(self._exacts_sorted) and self._exacts_sorted[index].startswith(text)

    def scan(
        self, view: bytes, find: Finder, *, final: bool, keys: list[int] | None = None
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
        """Complete occurrences in `view` as (start, end, form), and, unless `final`, the
        starts of suffixes that are proper prefixes of a form as (start, form or -1),
        earliest first. `keys`: the anchor hits in `view` when the caller has them (only
        those are looked at), else `find(view)`."""
        complete: list[tuple[int, int, int]] = []
        pending: list[tuple[int, int]] = []
        size = len(view)
        count = len(self.anchors)
        texts = self.texts
        for key in find(view) if keys is None else keys:
            start, anchor = divmod(key, count)
            for index in self.members[anchor]:
                text = texts[index]
                end = start + len(text)
                if end <= size:
                    if end - start <= ANCHOR or view[start:end] == text:
                        complete.append((start, end, index))
                elif not final and view[start:] == text[: size - start]:
                    pending.append((start, index))
        if not final:
            heads = self._heads
            for length in range(min(ANCHOR - 1, size), 0, -1):
                start = size - length
                if length >= _HEAD and view[start : start + _HEAD] not in heads:
                    continue
                if self.begins_form(view[start:]):
                    pending.append((start, -1))
            pending.sort()
        return complete, pending


def _text_span(
    forms: FormSet, view: TextView, span: tuple[int, int], decoded: tuple[int, int], form: int
) -> tuple[int, int] | None:
    """The output span of text[span] (decoded[decoded] in the decoded view), or None when
    it crosses a line break that cannot have wrapped it."""
    first, last = decoded
    if last - first != span[1] - span[0]:
        cut = view.first_break(first, last)
        if cut is not None and not view.joinable(cut, first):
            exact = forms.exacts[form]
            if exact is None or view.decoded[first:last] != exact:
                return None
    return view.to_output(first, last)


def _text_pending(forms: FormSet, view: TextView, start: int, form: int) -> int | None:
    """Where the held part begins if text[start:] may still become form `form` (-1: some
    form), or None when a line break in the way could not have wrapped it."""
    first, _ = view.to_decoded(start, start + 1)
    size = len(view.decoded)
    cut = view.first_break(first, size)
    if cut is not None and not view.joinable(cut, first):
        rest = view.decoded[first:]
        if form >= 0:
            exact = forms.exacts[form]
            if exact is None or not exact.startswith(rest):
                return None
        elif not forms.begins_exact(rest):
            return None
    return view.to_output(first, first + 1)[0]


class Search(NamedTuple):
    """How a stream searches: the engine's finder; threads to work out the dump view beside
    the text view (numpy and hyperscan release the GIL), or None; and the finder the dump
    view uses there, when the engine keeps scratch space per scan (None: `find`)."""

    find: Finder
    pool: Executor | None = None
    dump_find: Finder | None = None
    # Search the as-is view only near escapes (nearby.py); False searches all of it, the
    # plain way the tests compare with.
    nearby: bool = True


def _as_is_keys(
    forms: FormSet,
    find: Finder,
    escapes: Escapes,
    breaks: npt.NDArray[np.int64],
    *,
    final: bool,
) -> list[int] | None:
    """The anchor hits of the as-is text view (escapes.source without line breaks) near
    the escapes, as `FormSet.scan` keys of that view: [] when the view adds nothing to
    the decoded view (no hit, and the end, where a held part may begin, is far from every
    escape); None when the regions near the escapes are most of the read (searching all
    of it is then cheaper)."""
    source = escapes.source
    regions = as_is_regions(
        source,
        escapes.starts,
        escapes.ends,
        reach=forms.introducer_reach,
        anchor=forms.max_anchor,
    )
    if sum(last - first for first, last in regions) * 2 > len(source):
        return None
    if not final and regions[-1][1] > text_bytes_before(source, len(source), ANCHOR - 1):
        # The suffixes that may begin a form (FormSet.scan) reach into a region: let the
        # view look at its end itself.
        return None
    pieces = [remove_breaks(source[first:last]) for first, last in regions]
    firsts = list(accumulate(map(len, pieces), initial=0))
    # Where each region begins in the view: its output offset less the breaks before it.
    offsets = np.asarray([first for first, _ in regions], dtype=np.int64)
    offsets -= np.searchsorted(breaks, offsets)
    starts = offsets.tolist()
    count = len(forms.anchors)
    lengths = forms.anchor_lengths
    keys = []
    for key in find(b"".join(pieces)):
        start, anchor = divmod(key, count)
        index = bisect_right(firsts, start) - 1
        # A hit across two regions' joint is no hit of the view.
        if start + lengths[anchor] <= firsts[index + 1]:
            keys.append((starts[index] + start - firsts[index]) * count + anchor)
    return keys


def _one_kind_views(forms: FormSet, escapes: Escapes) -> list[Escapes]:
    """The escapes of each one-kind view worth searching: a printer escapes a value in one
    kind (JSON, percent, HTML), and leaves another kind's escape in the value as it is,
    which the view of every kind decodes. So where a form holds an escape of some kind
    and the output holds escapes of that kind and of another, the view that decodes only
    the other kind shows the value as it was before it was printed. Empty for most output
    and secrets."""
    present = forms.escape_kinds & escapes.kinds
    views = []
    for kind in sorted(escapes.kinds):
        if present - {kind}:
            one = escapes.only(kind)
            if one.count:
                views.append(one)
    return views


def _dump_part(
    forms: FormSet,
    find: Finder,
    window: bytes,
    lines: Lines,
    *,
    line_start: bool,
    final: bool,
) -> tuple[list[tuple[int, int, int]], int]:
    """Dump view: candidates (start, -end, owner), and where holding back begins
    (len(window) if nowhere). `lines`: the window's line structure."""
    size = len(window)
    hold = size
    found: list[tuple[int, int, int]] = []
    newlines = lines.newlines
    segments = dump_segments(
        window, newlines, line_start=line_start, final=final, candidates=lines.candidates
    )
    if segments:
        # One search over all segments (a call per dump costs more than the search), and
        # no match across two of them.
        data = b"".join(segment.data for segment in segments)
        firsts = list(accumulate((len(segment.data) for segment in segments[:-1]), initial=0))
        last_open = segments[-1].open_end
        complete, pending = forms.scan(data, find, final=not last_open)
        for start, end, form in complete:
            index = bisect_right(firsts, start) - 1
            offset = firsts[index]
            segment = segments[index]
            if end - offset <= len(segment.data):
                found.append(
                    (
                        segment.start_of(start - offset),
                        -segment.end_of(end - 1 - offset),
                        forms.owners[form],
                    )
                )
        for start, _ in pending:
            if start >= firsts[-1]:
                hold = min(hold, segments[-1].start_of(start - firsts[-1]))
                break
    if not final:
        tail = int(newlines[-1]) + 1 if len(newlines) else 0
        if tail < size and (tail or line_start) and may_become_dump_line(window[tail:]):
            hold = min(hold, tail)
    return found, hold


def analyze(
    forms: FormSet,
    search: Search,
    window: bytes,
    *,
    base: int = 0,
    line_start: bool = True,
    final: bool = True,
) -> tuple[list[Match], int]:
    """The matches to replace in window[base:] and the offset from which output must be
    held back (len(window) when nothing is). window[:base] is context already passed on:
    the beginning of the current line, which the views need. `line_start`: the window
    begins a line. `final`: no more output follows."""
    find = search.find
    dump_find = search.dump_find or find
    lines = scan_lines(window)
    breaks = lines.breaks
    if search.pool is not None:
        dumps = search.pool.submit(
            _dump_part, forms, dump_find, window, lines, line_start=line_start, final=final
        )
    size = len(window)
    hold = size
    escapes = Escapes(window)
    if not final:
        partial = partial_escape_start(window, escapes)
        if partial is not None:
            escapes = escapes.cut(partial)
            hold = partial
    sources = [escapes]
    # Without escapes the decoded text is the read itself (up to a cut-off escape).
    texts = [lines.text_of(escapes)]
    scanned = [forms.scan(texts[0], find, final=final)]
    if escapes.count:
        # The output as it is, too: a `%`, `\\` or `&` just before a value can turn its
        # first characters into an escape ("%73 6b 5f" is "s 6b 5f" decoded).
        keys = _as_is_keys(forms, find, escapes, breaks, final=final) if search.nearby else None
        if keys != []:
            as_is = Escapes.none(window, len(escapes.source))
            sources.append(as_is)
            texts.append(lines.text_before(len(as_is.text)))
            scanned.append(forms.scan(texts[1], find, final=final, keys=keys))
    for one_kind in _one_kind_views(forms, escapes):
        sources.append(one_kind)
        texts.append(lines.text_of(one_kind))
        scanned.append(forms.scan(texts[-1], find, final=final))
    if search.pool is not None:
        candidates, dump_hold = dumps.result()
    else:
        candidates, dump_hold = _dump_part(
            forms, dump_find, window, lines, line_start=line_start, final=final
        )
    hold = min(hold, dump_hold)
    # Text matches are checked left to right, as the choice among matches goes: a valid
    # one hides those that start inside it (the lines of a long multi-line value, say), so
    # those are not even mapped back — unless a match of another view overlaps it, and
    # could win (with two text views, any may).
    others = sorted((start, -negative_end) for start, negative_end, _ in candidates)
    other_starts = [start for start, _ in others]
    other_reach = list(accumulate((end for _, end in others), max))
    owners = forms.owners
    for source, text, (complete, pending) in zip(sources, texts, scanned, strict=True):
        view = TextView(source, line_start=line_start, breaks=breaks, text=text)
        complete.sort(key=lambda found: (found[0], -found[1], owners[found[2]]))
        firsts, lasts = view.to_decoded_many([c[0] for c in complete], [c[1] for c in complete])
        reached = 0
        for (start, end, form), first, last in zip(complete, firsts, lasts, strict=True):
            if start < reached:
                continue
            span = _text_span(forms, view, (start, end), (first, last), form)
            if span is not None:
                candidates.append((span[0], -span[1], owners[form]))
                before = bisect_left(other_starts, span[1])
                if len(sources) == 1 and (not before or other_reach[before - 1] <= span[0]):
                    reached = end
        for start, form in pending:
            held = _text_pending(forms, view, start, form)
            if held is not None:
                hold = min(hold, held)
                break

    hold = max(hold, base)
    candidates.sort()
    matches: list[Match] = []
    reached = base
    for start, negative_end, owner in candidates:
        if start >= hold:
            break
        if start >= reached:
            matches.append(Match(start, -negative_end, owner))
            reached = -negative_end
    return matches, hold
