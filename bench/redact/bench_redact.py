"""Redaction throughput and memory: 100 secrets (several of 16–64 KB) over a 100 MB
log-like stream with values planted in every covered form (plants.py), next to `cat`.

Every time row reads the same file through a pipe (`cat FILE | X > /dev/null`), so each
pays the same pipe costs; rounds are interleaved and the best round of each row is kept.

* cat            — `cat FILE | cat > /dev/null`: the floor;
* scrubber (E)   — `scrub_fd` with engine E (hyperscan where its wheel installs, and the
                   numpy fallback) in a process of its own reading the pipe, after the
                   forms are compiled: the steady-state throughput (its wall time is the
                   scrubbing alone, measured inside; CPU s is the whole pipeline);
*   no values (E) — the same over 100 MB of the same text with nothing planted: what
                   ordinary output costs;
* patina redact  — the real CLI `patina secrets redact --source vault` (the 100 secrets in
                   an age vault), start-up included;
* patina startup — the same CLI on empty input: its start-up alone.

Memory (VmRSS / VmHWM of the scrubbing process, each engine): after the imports, after
building the scrubber (the engine's idle RSS), and the peak while scrubbing the stream.
Single long secrets: one value of 8 KB and one of 16 KB, build time, memory and time per
84 KB read (the red-team figures were 645 MiB and 2.4 GiB, 177 ms per read, before). Per
form: the 64 KB secret printed in each form, scrubbed on its own.

Usage: .venv/bin/python bench/redact/bench_redact.py [--mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plants import PRINTERS, check_against_tools  # noqa: E402

from service.agent.vault import init_vault, write_vault  # noqa: E402
from service.redaction.engines import available_engines  # noqa: E402
from service.redaction.scrubber import Scrubber, scrub_fd  # noqa: E402

PATINA = str(Path(sys.executable).with_name("patina"))
WORDS = [
    "GET",
    "POST",
    "/api/v1/items",
    "status=200",
    "latency_ms",
    "user_id",
    "request_id",
    "INFO",
    "WARN",
    "DEBUG",
    "connection",
    "established",
    "retrying",
    "upstream",
    "timeout",
    "cache",
    "hit",
    "miss",
    "build",
    "step",
    "compiling",
    "test",
    "passed",
    "failed",
    "src/main.rs",
    "line",
    "column",
    "warning:",
    "unused",
    "variable",
]
LONG_SIZES = (64, 48, 32, 24, 16, 16)  # KB: a kubeconfig, service-account JSON, PEM chains
SHORT_PASSWORDS = 4  # Basic-auth passwords of 4–7 bytes


def make_secrets(rng: random.Random, count: int) -> list[bytes]:
    """`count` values: long PEM-like and JSON-like ones, short passwords, one ending in a
    newline (a `dir:` secret file), and API tokens."""
    values = []
    for index, kb in enumerate(LONG_SIZES):
        body = base64.b64encode(rng.randbytes(kb * 768))[: kb * 1024 - 64]
        if index % 2:
            key = body.decode()
            values.append(json.dumps({"type": "service_account", "private_key": key}).encode())
        else:
            wrapped = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
            values.append(
                b"-----BEGIN PRIVATE KEY-----\n" + wrapped + b"\n-----END PRIVATE KEY-----"
            )
    for _ in range(SHORT_PASSWORDS):
        values.append(rng.randbytes(8).hex()[: rng.randrange(4, 8)].encode())
    values.append(base64.urlsafe_b64encode(rng.randbytes(24)) + b"\n")
    while len(values) < count:
        values.append(base64.urlsafe_b64encode(rng.randbytes(rng.randrange(14, 30))).rstrip(b"="))
    return values


# Forms a long value is planted in: the escaped and dumped forms of a 64 KB value cost
# 5-50 ms each (one escape or dump line at a time), figures of their own below.
LONG_PLANTS = ("raw", "trimmed", "base64", "base64url", "basic-auth", "base32", "hex", "xxd-p")


def make_stream(
    path: Path, size: int, values: list[bytes], rng: random.Random, *, rate: float = 0.002
) -> dict[str, int]:
    """Log-like text with values planted in every form, one line in 1/rate on average;
    returns plants per form."""
    planted = dict.fromkeys(PRINTERS, 0)
    names = list(PRINTERS)
    long_values = [v for v in values if len(v) > 4096]
    short_values = [v for v in values if len(v) <= 4096]
    long_planted = 0
    with path.open("wb") as fh:
        written = 0
        while written < size:
            lines = []
            for _ in range(2000):
                line = " ".join(rng.choices(WORDS, k=12))
                if rng.random() < rate:
                    if rng.random() < 0.01:
                        # A long value now and then: each of those plants is 16–90 KB.
                        name = LONG_PLANTS[long_planted % len(LONG_PLANTS)]
                        value = rng.choice(long_values)
                        long_planted += 1
                    else:
                        name = names[sum(planted.values()) % len(names)]
                        value = rng.choice(short_values)
                    lines.append(PRINTERS[name](value).decode("latin-1"))
                    planted[name] += 1
                lines.append(line)
            block = ("\n".join(lines) + "\n").encode("latin-1")
            fh.write(block)
            written += len(block)
    return planted


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_shell(command: str) -> tuple[float, float]:
    """Wall and CPU seconds of the whole pipeline."""
    cpu = cpu_seconds()
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], check=True)
    return time.perf_counter() - started, cpu_seconds() - cpu


def _status(field: str) -> int:
    """A VmRSS-style figure of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def probe(engine: str, secrets_file: Path, in_fd: int) -> None:
    """Child mode: build a scrubber, then scrub in_fd to /dev/null; print figures as JSON."""
    values = [base64.b64decode(v) for v in json.loads(secrets_file.read_text())]
    imported = _status("VmRSS")
    started = time.perf_counter()
    scrubber = Scrubber(
        [(f"<secret:{i:03d}>".encode(), v) for i, v in enumerate(values)], engine=engine
    )
    build = time.perf_counter() - started
    idle = _status("VmRSS")
    # Reset the high-water mark: the peak below is the scrubbing's alone.
    Path("/proc/self/clear_refs").write_text("5")
    devnull = os.open(os.devnull, os.O_WRONLY)
    started = time.perf_counter()
    cpu = time.process_time()
    scrub_fd(scrubber, in_fd, devnull)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    print(
        json.dumps(
            {
                "imported_kib": imported,
                "idle_kib": idle,
                "peak_kib": _status("VmHWM"),
                "build_s": build,
                "scrub_s": elapsed,
                "scrub_cpu_s": cpu,
            }
        )
    )


def run_probe(engine: str, secrets_file: Path, data: Path) -> tuple[float, float, dict[str, float]]:
    """`cat FILE | this --probe`: wall and CPU seconds of the scrubbing, and its figures."""
    cpu = cpu_seconds()
    command = (
        f"cat {data} | {sys.executable} {__file__} --probe {engine} --secrets-file {secrets_file}"
    )
    out = subprocess.run(["sh", "-c", command], check=True, capture_output=True, text=True)
    figures = json.loads(out.stdout)
    return figures["scrub_s"], cpu_seconds() - cpu, figures


def single_secret(kb: int) -> dict[str, float]:
    """One value of `kb` KB: build time, memory and the time per 84 KB read."""
    rng = random.Random(kb)
    value = base64.b64encode(rng.randbytes(kb * 768))[: kb * 1024]
    text = (" ".join(rng.choices(WORDS, k=12)) + "\n").encode() * 8000
    reads = [text[i : i + 84_000] for i in range(0, len(text) - 84_000, 84_000)]
    before = _status("VmRSS")
    started = time.perf_counter()
    scrubber = Scrubber({b"<secret:big>": value})
    build = time.perf_counter() - started
    stream = scrubber.stream()
    started = time.perf_counter()
    for piece in reads:
        stream.feed(piece)
    per_read = (time.perf_counter() - started) / len(reads)
    return {
        "build_s": build,
        "rss_mib": (_status("VmRSS") - before) / 1024,
        "read_ms": per_read * 1e3,
    }


def form_costs(values: list[bytes]) -> dict[str, tuple[int, float]]:
    """The longest value printed in each form, scrubbed alone (with all 100 secrets
    loaded): size of the printed text and the best of three times, in seconds."""
    scrubber = Scrubber([(f"<secret:{i:03d}>".encode(), v) for i, v in enumerate(values)])
    longest = max(values, key=len)
    costs = {}
    for name, printer in PRINTERS.items():
        text = printer(longest)
        best = float("inf")
        for _ in range(3):
            stream = scrubber.stream()
            started = time.perf_counter()
            for at in range(0, len(text), 1 << 20):
                stream.feed(text[at : at + (1 << 20)])
            out = stream.finish()
            best = min(best, time.perf_counter() - started)
        assert longest not in out
        costs[name] = (len(text), best)
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--secrets", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--secrets-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.secrets_file, sys.stdin.fileno())
        return 0
    differ = check_against_tools(random.Random(1).randbytes(100))
    if differ:
        print(f"dump printers differ from the real tools: {differ}", file=sys.stderr)
        return 2
    rng = random.Random(5)
    values = make_secrets(rng, args.secrets)
    singles = {kb: single_secret(kb) for kb in (8, 16)}
    per_form = form_costs(values)
    with tempfile.TemporaryDirectory(prefix="bench-redact-") as tmp_dir:
        tmp = Path(tmp_dir)
        data = tmp / "stream.txt"
        planted = make_stream(data, args.mb * 1_000_000, values, rng)
        plain = tmp / "plain.txt"
        make_stream(plain, args.mb * 1_000_000, values, rng, rate=0)
        size = data.stat().st_size
        secrets_file = tmp / "secrets.json"
        secrets_file.write_text(json.dumps([base64.b64encode(v).decode() for v in values]))
        home = tmp / "home"
        vault = home / "secrets" / "vault.age"
        init_vault(vault, home / "secrets" / "identity.txt")
        recipients = (vault.parent / "vault.age.recipients").read_text().split()[-1:]
        write_vault(vault, {f"S{i:03d}": v.decode() for i, v in enumerate(values)}, recipients)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
        env["PATINA_HOME"] = str(home)
        os.environ.update(env)
        scrubbed = tmp / "scrubbed.txt"
        subprocess.run(
            f"{PATINA} secrets redact --source vault < {data} > {scrubbed}", shell=True, check=True
        )
        output = scrubbed.read_bytes()
        left = sum(output.count(v.strip()) for v in values if len(v.strip()) >= 8)
        placeholders = output.count(b"${secret:S")
        del output
        scrubbed.unlink()

        rows: dict[str, list[tuple[float, float]]] = {"cat": []}
        memory: dict[str, dict[str, float]] = {}
        for engine in available_engines():
            rows[f"scrubber ({engine})"] = []
            rows[f"  no values ({engine})"] = []
        rows["patina redact"] = []
        # CPU time of scrub_fd alone (every thread of the scrubbing process): less
        # sensitive to other work on the machine than the wall time.
        scrub_cpu: dict[str, float] = {}
        rows["patina startup"] = []
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            rows["cat"].append(time_shell(f"cat {data} | cat > /dev/null"))
            for engine in available_engines():
                wall, cpu, figures = run_probe(engine, secrets_file, data)
                rows[f"scrubber ({engine})"].append((wall, cpu))
                memory[engine] = figures
                wall, cpu, plain_figures = run_probe(engine, secrets_file, plain)
                rows[f"  no values ({engine})"].append((wall, cpu))
                for name, used in (
                    (f"scrubber ({engine})", figures["scrub_cpu_s"]),
                    (f"  no values ({engine})", plain_figures["scrub_cpu_s"]),
                ):
                    scrub_cpu[name] = min(scrub_cpu.get(name, used), used)
            rows["patina redact"].append(
                time_shell(f"cat {data} | {PATINA} secrets redact --source vault > /dev/null")
            )
            rows["patina startup"].append(
                time_shell(f"{PATINA} secrets redact --source vault < /dev/null > /dev/null")
            )
        load_after = os.getloadavg()
    total = sum(planted.values())
    print(
        f"stream: {size / 1e6:.0f} MB of log-like text; {args.secrets} secrets "
        f"({', '.join(f'{kb} KB' for kb in LONG_SIZES)}, {SHORT_PASSWORDS} passwords of "
        f"4-7 bytes, one ending in a newline, the rest 19-40 byte tokens)"
    )
    print(f"planted: {total} occurrences, " + ", ".join(f"{k} {v}" for k, v in planted.items()))
    print(
        f"the CLI's output: {placeholders} placeholders; raw values left in it: {left}\n"
        f"load average (1/5/15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)}, on {os.cpu_count()} CPUs\n"
        f"best of {args.rounds} interleaved rounds, each `cat FILE | X > /dev/null`; "
        "CPU s: least CPU time of the whole pipeline in any round\n"
    )
    best = {name: min(wall for wall, _ in times) for name, times in rows.items()}
    cpu = {name: min(used for _, used in times) for name, times in rows.items()}
    print(f"{'row':22s} {'seconds':>8s} {'MB/s':>8s} {'x cat':>7s} {'CPU s':>7s}")
    for name in rows:
        wall = best[name]
        print(
            f"{name:22s} {wall:8.3f} {size / wall / 1e6:8.0f} {best['cat'] / wall:6.2f}x "
            f"{cpu[name]:7.3f}"
        )
    print("\nCPU seconds of scrub_fd alone (all its threads), least of the rounds:")
    for name, used in scrub_cpu.items():
        print(f"  {name.strip():22s} {used:6.3f} s  {size / used / 1e6:5.0f} MB per CPU second")
    print("\nmemory of the scrubbing process (MiB): after imports, idle (scrubber built), peak")
    for engine, figures in memory.items():
        imported, idle, peak = (figures[k] / 1024 for k in ("imported_kib", "idle_kib", "peak_kib"))
        print(
            f"  {engine:10s} {imported:6.0f} {idle:6.0f} {peak:6.0f}   "
            f"build {figures['build_s']:.2f} s, +{idle - imported:.0f} MiB; "
            f"peak {peak - idle:+.0f} MiB over idle (target <= 100)"
        )
    print("\none long secret (default engine): build, memory, time per 84 KB read")
    for kb, figures in singles.items():
        print(
            f"  {kb:2d} KB: build {figures['build_s'] * 1e3:.0f} ms, "
            f"+{figures['rss_mib']:.1f} MiB, {figures['read_ms']:.2f} ms per read"
        )
    print(f"\nthe {max(len(v) for v in values) // 1024} KB secret in each form, scrubbed alone:")
    for name, (size, seconds) in per_form.items():
        print(
            f"  {name:16s} {size / 1000:6.0f} KB  {seconds * 1e3:6.1f} ms  "
            f"{size / seconds / 1e6:6.1f} MB/s"
        )
    default = available_engines()[0]
    ratio = best["cat"] / best[f"scrubber ({default})"]
    peak_over = (memory[default]["peak_kib"] - memory[default]["idle_kib"]) / 1024
    print(
        f"\nsteady-state scrubber ({default}, the default here) vs cat: {ratio:.2f}x "
        f"(target >= 0.5x); peak over idle {peak_over:.0f} MiB (target <= 100); "
        f"raw values left {left} (target 0)"
    )
    return 0 if ratio >= 0.5 and peak_over <= 100 and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
