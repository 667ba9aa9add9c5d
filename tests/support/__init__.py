"""Helpers shared by test packages: real service processes, short temp dirs, clients."""
