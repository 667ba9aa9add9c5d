"""Hostile clients on a real socket: oversized bodies and headers, slow headers and bodies.
After each, the server keeps serving."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support.process import ServiceProcess, running_service


def _raw(service: ServiceProcess) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(service.socket))
    return s


def _read_response(s: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b'"}' in data:
                break
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass
    return data


def _still_serving(service: ServiceProcess) -> None:
    with service.client() as c:
        assert c.get("/health").status_code == 200


# POST /secrets/cache reads and validates a JSON body, so it exercises the streamed cap.
BODY_ROUTE = b"/secrets/cache"


def test_two_mib_chunked_body_gets_413_and_the_server_keeps_serving(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        s = _raw(service)
        s.sendall(
            b"POST " + BODY_ROUTE + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        try:
            for _ in range(32):  # 2 MiB, no Content-Length
                s.sendall(chunk)
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close as soon as it has answered
        answer = _read_response(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
        assert b'{"error":"request body exceeds 1048576 bytes"}' in answer.replace(b": ", b":")
        _still_serving(service)


def test_lying_content_length_is_refused_before_the_body(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        s = _raw(service)
        s.sendall(
            b"POST "
            + BODY_ROUTE
            + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"
            + b"a" * 1024
        )
        answer = _read_response(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
        _still_serving(service)


def test_oversized_headers_get_431(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        s = _raw(service)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
        answer = _read_response(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
        assert b"request headers too large" in answer
        _still_serving(service)


def test_endless_headers_are_cut_off_before_they_end(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        s = _raw(service)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        try:
            for i in range(2000):  # ~60 KB of headers that never finish
                s.sendall(b"X-H%d: %s\r\n" % (i, b"b" * 24))
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_response(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
        _still_serving(service)


def test_slow_headers_get_408(short_tmp: Path) -> None:
    env = {"PATINA_HEADER_TIMEOUT_SECS": "1"}
    with running_service(home=short_tmp, env=env) as service:
        s = _raw(service)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = _read_response(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert time.monotonic() - started < 8
        _still_serving(service)


def test_idle_connection_is_closed_after_the_header_timeout(short_tmp: Path) -> None:
    env = {"PATINA_HEADER_TIMEOUT_SECS": "1", "PATINA_KEEPALIVE_TIMEOUT_SECS": "30"}
    with running_service(home=short_tmp, env=env) as service:
        s = _raw(service)
        assert s.recv(100) == b""  # closed by the server, nothing said
        s.close()
        _still_serving(service)


def test_slow_body_gets_408(short_tmp: Path) -> None:
    env = {"PATINA_BODY_TIMEOUT_SECS": "1"}
    with running_service(home=short_tmp, env=env) as service:
        s = _raw(service)
        s.sendall(
            b"POST " + BODY_ROUTE + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        answer = _read_response(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b"request body arrived too slowly" in answer
        _still_serving(service)
