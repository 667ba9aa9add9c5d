"""How the redaction benchmark prints a secret into its stream: one printer per covered form.

The dump printers write what `xxd`, `xxd -p`, `hexdump -C`, `od -c` and `od -An -tx1` write
(`check_against_tools` compares them with the real tools on this machine), so the stream
can hold thousands of dumps without starting thousands of processes.
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
import urllib.parse
from collections.abc import Callable

Printer = Callable[[bytes], bytes]


def _wrap(text: bytes, width: int, newline: bytes = b"\n") -> bytes:
    return newline.join(text[i : i + width] for i in range(0, len(text), width)) + newline


def _printable(byte: int) -> str:
    return chr(byte) if 32 <= byte < 127 else "."


def xxd(data: bytes) -> bytes:
    lines = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        pairs = [row[i : i + 2].hex() for i in range(0, len(row), 2)]
        text = "".join(_printable(b) for b in row)
        lines.append(f"{at:08x}: {' '.join(pairs):<39}  {text}\n")
    return "".join(lines).encode()


def hexdump_c(data: bytes) -> bytes:
    lines = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        left = " ".join(f"{b:02x}" for b in row[:8])
        right = " ".join(f"{b:02x}" for b in row[8:])
        body = f"{left}  {right}" if right else left
        text = "".join(_printable(b) for b in row)
        lines.append(f"{at:08x}  {body:<48}  |{text}|\n")
    lines.append(f"{len(data):08x}\n")
    return "".join(lines).encode()


_OD_NAMES = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def od_c(data: bytes) -> bytes:
    lines = []
    for at in range(0, len(data), 16):
        cells = []
        for b in data[at : at + 16]:
            if b in _OD_NAMES:
                cells.append(f"{_OD_NAMES[b]:>4}")
            elif 32 <= b < 127:
                cells.append(f"{chr(b):>4}")
            else:
                cells.append(f" {b:03o}")
        lines.append(f"{at:07o}{''.join(cells)}\n")
    lines.append(f"{len(data):07o}\n")
    return "".join(lines).encode()


def od_an_tx1(data: bytes) -> bytes:
    rows = (data[i : i + 16] for i in range(0, len(data), 16))
    return b"".join(b" " + row.hex(" ").encode() + b"\n" for row in rows)


def xxd_p(data: bytes) -> bytes:
    return _wrap(data.hex().encode(), 60)


def _json_go(value: bytes) -> bytes:
    text = json.dumps(value.decode("latin-1"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def _html(value: bytes) -> bytes:
    # Every other character as a numeric reference, the rest as html.escape writes it.
    text = value.decode("latin-1")
    return "".join(f"&#{ord(c)};" if i % 2 else html.escape(c) for i, c in enumerate(text)).encode()


# name -> printer of one occurrence (the value in context where the form needs one).
PRINTERS: dict[str, Printer] = {
    "raw": lambda v: v,
    "trimmed": lambda v: v.strip(),
    "base64": lambda v: _wrap(base64.b64encode(v + b"\n"), 76),
    "base64-crlf-w64": lambda v: _wrap(base64.b64encode(b"x" + v), 64, b"\r\n"),
    "base64url": lambda v: base64.urlsafe_b64encode(b"ab" + v).rstrip(b"="),
    "basic-auth": lambda v: b"Authorization: Basic " + base64.b64encode(b"user:" + v.strip()),
    "base32": lambda v: _wrap(base64.b32encode(v), 76),
    "hex": lambda v: v.hex().encode(),
    "HEX-colons": lambda v: v.hex(":").upper().encode(),
    "percent": lambda v: urllib.parse.quote(v, safe="").encode(),
    "json-go": _json_go,
    "json-php": lambda v: json.dumps(v.decode("latin-1")).replace("/", "\\/").encode(),
    "html": _html,
    "xxd": xxd,
    "xxd-p": xxd_p,
    "hexdump-C": hexdump_c,
    "od-c": od_c,
    "od-An-tx1": od_an_tx1,
}

_TOOLS = {
    "xxd": ["xxd"],
    "xxd-p": ["xxd", "-p"],
    "hexdump-C": ["hexdump", "-C"],
    "od-c": ["od", "-c"],
    "od-An-tx1": ["od", "-An", "-tx1"],
}


def check_against_tools(sample: bytes) -> list[str]:
    """Names of dump printers whose output differs from the real tool's on `sample`."""
    differ = []
    for name, argv in _TOOLS.items():
        real = subprocess.run(argv, input=sample, capture_output=True, check=True).stdout
        if real != PRINTERS[name](sample):
            differ.append(name)
    return differ
