"""The one compiled module: the secret scrubber's line pass (service/redaction/_fastscan.c).

Everything else is declared in pyproject.toml. The module is optional: where no C compiler
is found the build goes on without it, and the scrubber uses its pure-Python path
(service/redaction/compiled.py says so in a debug log).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "service.redaction._fastscan",
            ["service/redaction/_fastscan.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
