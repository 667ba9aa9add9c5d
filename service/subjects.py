"""Client-certificate subjects: rendered per RFC 4514 and compared as names, not strings.

A subject is a sequence of attribute sets, and its values may hold any character: commas,
plus signs, quotes, newlines, terminal escapes. Joining `key=value` pairs loosely lets two
different subjects print alike (`CN=a,O=b` as one common name, or as two attributes) and
lets a certificate write lines into a text log. So:

* a subject is rendered the RFC 4514 way (the last RDN first, special characters escaped by
  `cryptography`), and every character that is not printable is written as `\\XX` escapes
  of its UTF-8 bytes, which RFC 4514 allows for any character: the text is one safe line
  and parses back to the same name;
* a subject named in a consumers file is parsed into a name, and a caller matches when its
  certificate's name is equal attribute by attribute (`cryptography`'s Name equality: the
  same RDNs in the same order, each the same set of attribute types and values).
"""

from __future__ import annotations

import functools

from cryptography import x509


def render_subject(name: x509.Name) -> str:
    """The RFC 4514 string of `name`, with non-printable characters hex-escaped."""
    text = name.rfc4514_string()
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _hex_escape(ch) for ch in text)


def _hex_escape(ch: str) -> str:
    return "".join(f"\\{byte:02X}" for byte in ch.encode("utf-8"))


def subject_of_certificate(der: bytes | None) -> str | None:
    """The rendered subject of a DER certificate (None without one, or if unreadable)."""
    if not der:
        return None
    try:
        return render_subject(x509.load_der_x509_certificate(der).subject)
    except ValueError:
        return None


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 string as a name; ValueError when it is not one."""
    try:
        name = x509.Name.from_rfc4514_string(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an RFC 4514 distinguished name: {exc}") from None
    if not len(name):
        raise ValueError("not an RFC 4514 distinguished name: it is empty")
    return name


@functools.lru_cache(maxsize=1024)
def _name_of(rendered: str) -> x509.Name | None:
    # A caller's subject is our own rendering, so it parses; the cache keeps a connection's
    # every request from parsing it again.
    try:
        return parse_subject(rendered)
    except ValueError:
        return None


def same_subject(rendered: str | None, expected: x509.Name) -> bool:
    """Whether a caller's rendered subject names exactly `expected`."""
    return rendered is not None and _name_of(rendered) == expected
