"""Listeners: the public and admin Unix sockets, TLS TCP and the metrics port."""
