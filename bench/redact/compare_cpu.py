"""CPU time of the scrubber at another revision and in this tree, interleaved, on the
benchmark's streams: a before/after figure that a loaded machine distorts less than wall
time (each run is one thread, in memory, 1 MiB reads, freed buffers kept in the heap as
scrub_fd keeps them; least of `--rounds` per tree).

Usage: .venv/bin/python bench/redact/compare_cpu.py REV [--mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from bench_redact import make_secrets, make_stream  # noqa: E402

# Run in a child with the tree's `service` package first on the path.
_CHILD = """
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
from service.redaction.match import Search
from service.redaction.scrubber import Scrubber, ScrubStream, keep_freed_buffers
keep_freed_buffers()  # as scrub_fd does: no page faults for each read's fresh buffers
values = [base64.b64decode(v) for v in json.loads(open(sys.argv[2]).read())]
scrubber = Scrubber([(b"<s%d>" % i, v) for i, v in enumerate(values)], engine=sys.argv[4])
data = open(sys.argv[3], "rb").read()
started = time.process_time()
stream = ScrubStream(scrubber, Search(scrubber.finder()))
for at in range(0, len(data), 1 << 20):
    stream.feed_pieces(data[at : at + (1 << 20)])
stream.finish_pieces()
print(time.process_time() - started)
"""


def cpu_seconds(tree: Path, secrets: Path, data: Path, engine: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), str(secrets), str(data), engine],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def build_line_pass(tree: Path) -> None:
    """Compile the tree's line pass (service/redaction/_fastscan.c) in place, as setup.py
    would, where the tree has one: `git archive` holds the source, not the module, and
    without it that tree would run its slower pure path."""
    source = tree / "service" / "redaction" / "_fastscan.c"
    if not source.exists():
        return
    target = source.with_name("_fastscan" + sysconfig.get_config_var("EXT_SUFFIX"))
    include = sysconfig.get_paths()["include"]
    flags = ["-O2", "-Wall", "-Wextra", "-fPIC", "-shared", f"-I{include}"]
    subprocess.run(["cc", *flags, str(source), "-o", str(target)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", default="hyperscan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-redact-cpu-") as tmp_dir:
        tmp = Path(tmp_dir)
        old = tmp / "old"
        old.mkdir()
        command = ["git", "-C", str(ROOT), "archive", args.rev, "service"]
        archive = subprocess.run(command, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        build_line_pass(old)
        rng = random.Random(5)
        values = make_secrets(rng, 100)
        streams = {"planted": tmp / "planted.txt", "no values": tmp / "plain.txt"}
        make_stream(streams["planted"], args.mb * 1_000_000, values, rng)
        make_stream(streams["no values"], args.mb * 1_000_000, values, rng, rate=0)
        secrets = tmp / "secrets.json"
        secrets.write_text(json.dumps([base64.b64encode(v).decode() for v in values]))
        trees = {args.rev: old, "this tree": ROOT}
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for stream, path in streams.items():
                for name, tree in trees.items():
                    used = cpu_seconds(tree, secrets, path, args.engine)
                    best[name, stream] = min(best.get((name, stream), used), used)
    print(f"CPU seconds, {args.engine}, {args.mb} MB, least of {args.rounds} interleaved rounds")
    for (name, stream), used in best.items():
        print(f"  {name:12s} {stream:10s} {used:6.3f} s  {args.mb / used:5.0f} MB per CPU second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
