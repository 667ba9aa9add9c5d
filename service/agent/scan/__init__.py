"""Finding secrets in a repository: by shape (patterns.py) and by exact value (values.py),
in staged, tracked or historical content (sources.py), minus `.secretsignore`."""
