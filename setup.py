"""The compiled modules: the secret scrubber's line pass (service/redaction/_fastscan.c) and
the int8 first pass of the cosine scan (service/knowledge/_vectorscan.c).

Everything else is declared in pyproject.toml. The modules are optional: where no C compiler
is found the build goes on without them, and the scrubber uses its pure-Python path
(service/redaction/compiled.py), the scan its float32 one (service/knowledge/vector_scan.py);
each says so in a debug log.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "service.redaction._fastscan",
            ["service/redaction/_fastscan.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        ),
        # -O3: GCC vectorises the int8 dot product's widening sum only at -O3.
        Extension(
            "service.knowledge._vectorscan",
            ["service/knowledge/_vectorscan.c"],
            extra_compile_args=["-O3", "-Wall", "-Wextra"],
            optional=True,
        ),
    ]
)
