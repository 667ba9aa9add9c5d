"""What the scrubber looks for: every byte string that shows a secret value in one of the
scrubber's views of the output (views.py, dumps.py).

The views undo what a printer does to a value: escapes are decoded (JSON, percent, HTML and
XML, `\\xHH`), line breaks are removed (wrapped base64, hex and base32), hex dumps are read
back into bytes. So a value needs only a few forms here, whatever escaping or line width
printed it:

* the value itself, and the value without its trailing newline or surrounding whitespace
  (a `dir:` secret file usually ends in a newline that `$(cat FILE)` drops);
* base64, standard and URL-safe, of the value at each of the three byte alignments it can
  have inside a longer encoded text (`base64(user:password)`), both the characters that
  depend on the value alone and, for a value that ends the encoded data, the last partial
  character and the padding; the same for `value:` (a key used as the Basic-auth user
  name);
* base32 at its five alignments, upper and lower case;
* hex, lower and upper case, plain or with a space or a colon between bytes;
* each long line of a multi-line value (a PEM body printed line by line).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from service.redaction.views import decode_escapes, remove_breaks

# Values shorter than this are not scrubbed: a 1–3 byte "secret" would match everywhere.
MIN_VALUE_LEN = 4
# Shorter encoded forms are skipped: base64 of a 4-byte password at the worst alignment is
# 4 characters long, so this is the shortest form that still covers such a password.
MIN_FORM_LEN = 4
# Lines of a multi-line value are forms of their own only from this length on.
MIN_LINE_LEN = 16

_URLSAFE = bytes.maketrans(b"+/", b"-_")


@dataclass(frozen=True, slots=True)
class Form:
    """One searched byte string. `exact` is set for a value with line breaks of its own:
    the text as it is before breaks are removed, which is accepted across any line break
    (an encoded form may only continue across a break that wrapped it)."""

    text: bytes
    exact: bytes | None = None

    def __repr__(self) -> str:
        return f"Form(len={len(self.text)})"


def _shifted(
    value: bytes, encode: Callable[[bytes], bytes], group: int, bits: int
) -> Iterator[bytes]:
    """The encoding of `value` at each byte alignment inside a longer encoded text: the
    characters that depend on the value's bits alone; for a value that ends the data, also
    the last partial character (its padding bits are zeros), with and without `=`."""
    size = len(value)
    for shift in range(group):
        padded = encode(bytes(shift) + value)
        bare = padded.rstrip(b"=")
        first = -(-8 * shift // bits)  # the first character without bits of the filler
        yield bare[first : 8 * (shift + size) // bits]
        yield bare[first:]
        yield padded[first:]


_B32_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_B32_PADDING = {0: 0, 1: 6, 2: 4, 3: 3, 4: 1}


def _b32encode(data: bytes) -> bytes:
    """base64.b32encode, vectorised: the standard library's is pure Python and takes a
    tenth of a second for the five alignments of a 64 KB secret."""
    if len(data) < 256:
        return base64.b32encode(data)
    padded = np.frombuffer(data + bytes(-len(data) % 5), dtype=np.uint8)
    groups = np.unpackbits(padded).reshape(-1, 5)
    digits = groups @ np.array([16, 8, 4, 2, 1], dtype=np.uint8)
    encoded = _B32_ALPHABET[digits].tobytes()
    pad = _B32_PADDING[len(data) % 5]
    return encoded[: len(encoded) - pad] + b"=" * pad if pad else encoded


def _encoded_forms(value: bytes) -> Iterator[bytes]:
    for data in (value, value + b":"):
        for form in _shifted(data, base64.b64encode, 3, 6):
            yield form
            yield form.translate(_URLSAFE)
    for form in _shifted(value, _b32encode, 5, 5):
        yield form
        yield form.lower()
    hexed = binascii.hexlify(value)
    yield from (hexed, hexed.upper())
    for sep in (b" ", b":"):
        spaced = binascii.hexlify(value, sep)
        yield spaced
        yield spaced.upper()


def value_variants(value: bytes) -> list[bytes]:
    """The value, and the value without a trailing line break or surrounding whitespace
    (what `$(cat FILE)` or `.strip()` leave of a secret read from a file)."""
    if len(value) < MIN_VALUE_LEN:
        return []
    variants = [value]
    for trimmed in (value.rstrip(b"\r\n"), value.strip()):
        if trimmed not in variants and len(trimmed) >= MIN_VALUE_LEN:
            variants.append(trimmed)
    return variants


def secret_forms(value: bytes) -> list[Form]:
    """Every form of `value` the scrubber searches (see the module docstring), longest
    first. Empty for a value shorter than MIN_VALUE_LEN."""
    forms: dict[bytes, Form] = {}

    def add(text: bytes, exact: bytes | None = None) -> None:
        if len(text) >= MIN_FORM_LEN and text not in forms:
            forms[text] = Form(text, exact)

    for variant in value_variants(value):
        for raw in (variant, decode_escapes(variant)):
            # The text view holds no line breaks; the dump view keeps the value's own.
            compact = remove_breaks(raw)
            add(compact, raw if compact != raw else None)
            add(raw)
            if b" " in raw:
                # A query string's `+` for a space stays `+` when %XX escapes are decoded.
                add(compact.replace(b" ", b"+"))
        for line in variant.splitlines():
            if len(line.strip()) >= MIN_LINE_LEN:
                add(line.strip())
        for text in _encoded_forms(variant):
            add(text)
    return sorted(forms.values(), key=lambda form: len(form.text), reverse=True)
