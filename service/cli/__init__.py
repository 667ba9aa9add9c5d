"""The `patina` command line. Each module registers one group of commands."""
