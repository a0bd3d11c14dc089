"""Ports: the protocols the core needs from the outside world, one per module."""
