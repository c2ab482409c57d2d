"""Shipped configuration files (read with importlib.resources)."""
