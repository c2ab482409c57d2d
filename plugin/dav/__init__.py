"""The HTTP layer: the WSGI app around Radicale, request guards, preconditions,
the index-backed fast path and the per-request view, log and login handling."""
