# patina-serve image.
#
#   podman build --format docker -t patina-serve .      (or: docker build -t patina-serve .)
#
# Stage `build` makes the project wheel and a virtualenv holding it and its pinned
# dependencies; stage `rootfs` copies only that virtualenv onto a fresh base trimmed of pip and
# documentation; the final stage is that root as a single layer. No compiler, installer, pip
# cache or source tree reaches the final image. Nothing is downloaded at run time: the
# embedding model ships inside a Python package and is checked against its SHA-256 while the
# image is built.
#
# `--format docker` (or BUILDAH_FORMAT=docker) matters with podman: the OCI image format has
# no HEALTHCHECK field and podman would drop it.

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/patina

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# `strip`, for the extension modules below, and a C compiler for the project's own (the
# secret scrubber's line pass, service/redaction/_fastscan.c, and the int8 cosine scan,
# service/knowledge/_vectorscan.c); this stage only. The Python
# headers too where the base lacks them (a Debian-packaged python3 ships none; the official
# python image does).
# hadolint ignore=DL3008
RUN packages=(binutils gcc libc6-dev) \
 && include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
 && { [ -f "$include/Python.h" ] || packages+=(python3-dev); } \
 && apt-get update \
 && apt-get install -y --no-install-recommends "${packages[@]}" \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, in their own layer, pinned by constraints.txt: editing the code does not
# download them again. The list comes from pyproject.toml so it cannot drift from the package.
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv "$VIRTUAL_ENV" \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > requirements.txt \
 && "$VIRTUAL_ENV/bin/pip" install --require-virtualenv -c constraints.txt -r requirements.txt

# Trim what the service never runs (~75 MB), before the project's code arrives so that this
# layer stays cached while the code changes:
# * the Hugging Face Hub client, which `tokenizers` requires only for `from_pretrained`
#   downloads: without it the image cannot fetch a model even by mistake (its HTTP stack,
#   httpx2, stays: the MCP SDK imports it);
# * pygments' lexers but Python's and plain text's (8 MB): the CLI's help pages load pygments
#   through rich, and nothing here highlights source code;
# * numpy's compiler front-end (f2py) and C headers, test suites and the model-conversion
#   tooling that some wheels carry, and onnx's backend conformance suite (17 MB of test models;
#   the int8 quantiser needs only onnx itself, its reference evaluator and the graph helpers
#   of onnxruntime.transformers, not that package's per-architecture model code);
# * debug symbols of extension modules (uvloop alone drops from 13 MB to 2 MB). The libraries
#   vendored by auditwheel (*.libs/) are left alone: they were rewritten by patchelf.
RUN "$VIRTUAL_ENV/bin/pip" uninstall --yes huggingface-hub hf-xet fsspec tqdm filelock pyyaml \
 && site="$("$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && rm -rf "$site"/numpy/*/tests "$site"/numpy/tests "$site"/numpy/f2py "$site"/numpy/_core/include \
           "$site"/onnx/backend/test \
           "$site"/onnxruntime/transformers/models \
 && find "$site"/pygments/lexers -name '*.py' -not -name '__init__.py' -not -name '_mapping.py' \
      -not -name 'python.py' -not -name 'special.py' -delete \
 && rm -rf "$site"/pygments/lexers/__pycache__ "$site"/onnxruntime/tools "$site"/onnxruntime/datasets \
 && find "$VIRTUAL_ENV" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.c' -o -name '*.h' \) -delete \
 && find "$site" -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
 && "$VIRTUAL_ENV/bin/python" -c 'import numpy, onnxruntime, tokenizers, uvloop, httptools, cryptography.hazmat.bindings._rust, pyrage, onnxruntime.quantization'

# The project itself: build its wheel, then install that wheel (not the source tree). Its
# dependencies are already there, under the same pins; --no-deps keeps pip from putting back
# what was trimmed. Then the installers leave the virtualenv.
# The compiled modules are optional for a source install (no compiler: the pure paths run);
# the image checks that they were built. `-P`: import the installed package, not the source tree
# in the working directory (which has no compiled module).
COPY README.md setup.py ./
COPY service ./service
RUN "$VIRTUAL_ENV/bin/pip" wheel --no-deps --wheel-dir /wheels . \
 && "$VIRTUAL_ENV/bin/pip" install --require-virtualenv --no-deps -c constraints.txt /wheels/patina_serve-*.whl \
 && "$VIRTUAL_ENV/bin/pip" uninstall --yes pip setuptools wheel \
 && "$VIRTUAL_ENV/bin/python" -P -c 'import service.cli.main, service.app, service.mcp.http, service.mcp.stdio, service.redaction._fastscan, service.knowledge._vectorscan'

# ---------------------------------------------------------------------------------------------
# The runtime root filesystem: the base image without what a server never runs, plus the venv.
FROM ${BASE_IMAGE} AS rootfs

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The system pip/setuptools (Debian's packages or the official image's), documentation other
# than licences, translations and caches: ~75 MB of a Debian base. Also the parts of the
# standard library a server never imports (its regression tests, 2to3, pydoc's topic pages) and
# the wheels kept for `python -m venv` to seed pip with, and glibc's iconv converters (Python
# decodes text with its own codecs).
RUN if dpkg-query --show python3-pip >/dev/null 2>&1; then \
      dpkg --purge python3-pip python3-setuptools python3-wheel python3-pkg-resources; \
    else \
      python3 -m pip uninstall --yes pip setuptools wheel; \
    fi \
 && find /usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete \
 && rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/* /var/cache/* \
           /var/lib/apt/lists/* /root/.cache \
 && rm -rf /usr/share/python-wheels /usr/lib/x86_64-linux-gnu/gconv \
 && for stdlib in /usr/lib/python3.11 /usr/local/lib/python3.11; do \
      rm -rf "$stdlib"/test "$stdlib"/lib2to3 "$stdlib"/pydoc_data "$stdlib"/ensurepip \
             "$stdlib"/idlelib "$stdlib"/tkinter "$stdlib"/turtledemo; \
    done

# The health probe (standard library only: cheap enough to run every few seconds).
COPY scripts/container-healthcheck.py /usr/local/bin/patina-healthcheck

# A fixed non-root uid/gid for Kubernetes (runAsNonRoot needs a numeric USER); compose runs the
# container as the host user instead so that the bind-mounted socket is the host user's.
# /var/lib/patina is world-writable with the sticky bit (like /tmp) so that whatever uid runs
# the container can create its own 0700 data directory inside a fresh volume.
# (--no-log-init: a high uid would otherwise grow /var/log/lastlog and faillog.)
RUN groupadd --gid 10001 patina \
 && useradd --uid 10001 --gid 10001 --no-log-init --home-dir /var/lib/patina --no-create-home \
            --shell /usr/sbin/nologin patina \
 && chmod 0755 /usr/local/bin/patina-healthcheck \
 && install -d -m 1777 /var/lib/patina \
 && install -d -m 0700 -o 10001 -g 10001 /run/patina /run/patina-admin

COPY --from=build /opt/patina /opt/patina

# ---------------------------------------------------------------------------------------------
# One layer holding that root: files deleted above are gone, not hidden under a later layer.
FROM scratch AS runtime

ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="patina-serve" \
      org.opencontainers.image.description="Hybrid project search and an agent-safe secrets broker, served over a Unix socket and TLS." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/patina-serve/patina-serve" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# (DL3067 warns against this in general; here it is the point: a squashed, trimmed base.)
# hadolint ignore=DL3067
COPY --from=rootfs / /

ENV PATH=/opt/patina/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/patina \
    PATINA_HOME=/var/lib/patina \
    PATINA_DATA_DIR=/var/lib/patina/data \
    PATINA_RUN_DIR=/run/patina \
    PATINA_ADMIN_SOCKET_PATH=/run/patina-admin/admin.sock

USER 10001:10001

# Refuse to build an image whose model or tokenizer does not match the SHA-256s pinned in
# service/knowledge/model.py (the same check the service runs before loading them).
RUN ["python", "-c", "from service.knowledge.config import KnowledgeSettings as K; from service.knowledge.model import load_model_files as f; m = f(K()); print('verified', m.model_path, m.tokenizer_path)"]

# The TLS port (off unless PATINA_TCP or --tcp asks for it).
EXPOSE 50051

# GET /health over the public Unix socket, like a local client (`patina health` does the same
# but loads the whole CLI). CMD-SHELL form: podman splits the arguments of the exec form on
# spaces. (hadolint's DL3025 is about CMD, not HEALTHCHECK CMD.)
# hadolint ignore=DL3025
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD patina-healthcheck || exit 1

ENTRYPOINT ["patina"]
CMD ["serve"]
