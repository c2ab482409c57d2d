"""JSON Schema checks of request bodies, with ``jsonschema`` imported on first use.

``jsonschema`` (with ``referencing``, ``attrs`` and ``rpds``) took a twentieth of
the server's start when every API module built its validators on import; a
server that is only synced over CardDAV never needs it.
"""

from __future__ import annotations

from typing import Any


class SchemaCheck:
    """A Draft 2020-12 validator of one schema, built the first time a body is checked."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator: Any = None

    def first_error(self, data: Any) -> Any:
        """jsonschema's ``best_match`` error of ``data`` (a ``ValidationError``), or None."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import best_match

        if self._validator is None:  # two threads may both build it: the same validator
            self._validator = Draft202012Validator(self.schema)
        return best_match(self._validator.iter_errors(data))
