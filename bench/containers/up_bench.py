"""Container figures: image size (and what dominates it) and seconds from `up` to healthy.

    .venv/bin/python bench/containers/up_bench.py [--runs 3] [--no-build]

Side by side in the same run, as floors:
* `podman run` of the image doing nothing (`python -c pass`): what any container start costs;
* `patina serve` started directly on the host until /health answers: what the service's own
  start costs, without containers.
The compose figure adds compose, the healthcheck pump (podman without systemd probes every
second: up to 1 s of the wait is polling), and the sidecar's first push (`up` counts as done
when both containers are healthy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.containers.stack import IMAGE, Stack, build_image, podman_services  # noqa: E402
from tests.support.process import running_service, short_tmp_dir  # noqa: E402

PROJECT = {"README.md": "# bench\n"}


def image_report(image: str) -> None:
    info = json.loads(subprocess.check_output(["podman", "image", "inspect", image]))[0]
    print(f"image {image}: {info['Size'] / 1e6:.0f} MB (target <= 400 MB)")
    script = (
        "cd /opt/patina/lib/python3.11/site-packages && du -sm * | sort -rn | head -8; "
        "du -sm /opt/patina /usr 2>/dev/null"
    )
    out = subprocess.run(
        ["podman", "run", "--rm", "--network=none", "--entrypoint", "sh", image, "-c", script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print("largest parts (MB):")
    for line in out.splitlines():
        print("   ", line)


def container_floor(image: str) -> float:
    started = time.monotonic()
    subprocess.run(
        ["podman", "run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", "pass"],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def host_floor() -> float:
    started = time.monotonic()
    with running_service(env={"PATINA_KNOWLEDGE__ENABLED": "true"}):
        return time.monotonic() - started


def _timestamp(text: str) -> float:
    """podman's RFC 3339 time (nanoseconds, Z) as a Unix time."""
    head, _, frac = text.rstrip("Z").partition(".")
    frac = (frac.split("+")[0].split("-")[0] + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{frac}+00:00").timestamp()


def first_healthy(stack: Stack, service: str) -> float:
    """Unix time at which the service's first passing healthcheck ended."""
    log = (stack.state(service).get("Health") or {}).get("Log") or []
    return min(_timestamp(entry["End"]) for entry in log if entry["ExitCode"] == 0)


def compose_up(docker_host: str, image: str) -> tuple[float, float]:
    """Seconds from `up` until the service is healthy, and until both containers are."""
    stack = Stack(base=short_tmp_dir("pb"), docker_host=docker_host, image=image)
    try:
        stack.prepare(PROJECT)
        started = time.time()
        stack.up()
        return (
            first_healthy(stack, "patina") - started,
            first_healthy(stack, "sidecar") - started,
        )
    finally:
        stack.down()
        shutil.rmtree(stack.base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        print(f"build: {build_image(IMAGE):.0f} s (layer cache as it stands)")
    image_report(IMAGE)
    with podman_services() as docker_host:
        rows: dict[str, list[float]] = {
            "container no-op": [],
            "host patina serve": [],
            "up -> patina healthy": [],
            "up -> both healthy": [],
        }
        for _ in range(args.runs):
            rows["container no-op"].append(container_floor(IMAGE))
            rows["host patina serve"].append(host_floor())
            service, both = compose_up(docker_host, IMAGE)
            rows["up -> patina healthy"].append(service)
            rows["up -> both healthy"].append(both)
    floor = statistics.median(rows["host patina serve"])
    print(f"\nseconds over {args.runs} runs (median, min..max):")
    for name, values in rows.items():
        med = statistics.median(values)
        print(
            f"  {name:24} {med:6.2f}  ({min(values):.2f}..{max(values):.2f})"
            f"  x{med / floor:.2f} of host start"
        )
    print("target: up -> healthy <= 10 s")


if __name__ == "__main__":
    main()
