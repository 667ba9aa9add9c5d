"""The scrubber's rule spelled out plainly, on a whole text, for property tests to compare
the real scrubber (both engines, any chunking) with.

It shares only the definitions of the views with the scrubber: which escapes exist
(`Escapes`) and which lines are dump lines (`dump_segments`). Everything else —
the text view's offsets, which line breaks may wrap a value, searching every form,
choosing among matches — is written out here the slow, obvious way.
"""

from __future__ import annotations

import numpy as np

from service.redaction.dumps import dump_segments
from service.redaction.forms import secret_forms
from service.redaction.views import ENCODED_CHARS, JOIN_RUN, WRAP_TAIL, Escapes

BREAKS = b"\r\n"


def _decoded_bytes(text: bytes, escapes: Escapes) -> list[tuple[int, int, int]]:
    """Each byte of the text with `escapes` decoded as (byte, output start, output end of
    its escape)."""
    out = []
    pos = 0
    for start, end, value in zip(escapes.starts, escapes.ends, escapes.decoded, strict=True):
        out.extend((text[i], i, i + 1) for i in range(pos, start))
        out.extend((b, start, end) for b in value)
        pos = end
    out.extend((text[i], i, i + 1) for i in range(pos, len(text)))
    return out


def _line_before(decoded: bytes, at: int) -> tuple[int, bytes]:
    """The line that the break at decoded[at] ends, and where it begins."""
    begin = max(decoded.rfind(b"\n", 0, at), decoded.rfind(b"\r", 0, at)) + 1
    return begin, decoded[begin:at]


def _encoded_run(line: bytes) -> tuple[int, bool]:
    """Length of the run of encoded characters ending the line (blanks after it aside),
    and whether it is all of the line (blanks around it aside)."""
    stripped = line.rstrip(b" \t")
    run = len(stripped) - len(stripped.rstrip(bytes(ENCODED_CHARS)))
    return run, run > 0 and not stripped[: len(stripped) - run].strip(b" \t")


def _may_wrap(decoded: bytes, at: int, start: int) -> bool:
    """A match beginning at decoded[start] may cross the break at decoded[at] when the line
    before it ends in JOIN_RUN encoded characters, or is made of them alone and the match
    covers it from its first one, or is made of them alone and so is the line before it,
    with as many."""
    begin, line = _line_before(decoded, at)
    run, whole = _encoded_run(line)
    if run >= JOIN_RUN:
        return True
    if not whole:
        return False
    content = begin + len(line) - len(line.lstrip(b" \t"))
    if start <= content or content + run - start >= WRAP_TAIL:
        return True
    if begin == 0:
        return False
    previous_end = begin - 1
    if decoded[previous_end] == ord("\n") and decoded[previous_end - 1 : previous_end] == b"\r":
        previous_end -= 1
    previous, previous_whole = _encoded_run(_line_before(decoded, previous_end)[1])
    return previous_whole and previous == run and previous < JOIN_RUN


def reference_scrub(secrets: list[tuple[bytes, bytes]], text: bytes) -> bytes:
    """Every occurrence of every form in the text view and the dump view, as output spans;
    from left to right the longest is replaced (the first secret listed on a tie)."""
    owner: dict[bytes, int] = {}
    exact: dict[bytes, bytes | None] = {}
    for index, (_, value) in enumerate(secrets):
        for form in secret_forms(value):
            if form.text not in owner:
                owner[form.text] = index
                exact[form.text] = form.exact
    spans: list[tuple[int, int, int]] = []

    # The text view, escapes decoded, and the output as it is (an escape can swallow the
    # first characters of a value printed right after a `%`, `\\` or `&`); where some form
    # holds an escape of a kind the output holds, and the output holds another kind too,
    # each view that decodes one kind only (a printer escapes a value in one kind).
    escapes = Escapes(text)
    held = {kind for form in owner for kind in Escapes(form).kinds} & escapes.kinds
    views = [escapes, Escapes.none(text, len(text))]
    views += [escapes.only(kind) for kind in sorted(escapes.kinds) if held - {kind}]
    for decoded_bytes in (_decoded_bytes(text, view) for view in views):
        decoded = bytes(b for b, _, _ in decoded_bytes)
        kept = [i for i, b in enumerate(decoded) if b not in BREAKS]
        view = bytes(decoded[i] for i in kept)
        for form, who in owner.items():
            at = view.find(form)
            while at >= 0:
                first, last = kept[at], kept[at + len(form) - 1] + 1
                crossed = [i for i in range(first, last) if decoded[i] in BREAKS]
                if (
                    not crossed
                    or _may_wrap(decoded, crossed[0], first)
                    or decoded[first:last] == exact[form]
                ):
                    spans.append((decoded_bytes[first][1], decoded_bytes[last - 1][2], who))
                at = view.find(form, at + 1)

    newlines = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)
    for segment in dump_segments(text, newlines, line_start=True, final=True):
        data = bytes(segment.data)
        for form, who in owner.items():
            at = data.find(form)
            while at >= 0:
                spans.append((segment.start_of(at), segment.end_of(at + len(form) - 1), who))
                at = data.find(form, at + 1)

    spans.sort(key=lambda span: (span[0], -span[1], span[2]))
    out = []
    pos = 0
    for start, end, who in spans:
        if start >= pos:
            out.append(text[pos:start])
            out.append(secrets[who][0])
            pos = end
    out.append(text[pos:])
    return b"".join(out)
