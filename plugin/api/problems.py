"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal of the API is one of these, so a script or the web page can
show ``detail`` to a person as it is: it is a whole sentence that says what
was wrong and, where there is one, what to do next.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """A request refused with ``status`` and a sentence for the user."""

    def __init__(self, status: int, detail: str, headers: list[tuple[str, str]] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or []
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return problem_body(self.status, self.detail, **self.extra)


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """The problem document: ``title`` is the status phrase, ``detail`` the sentence."""
    detail = detail.strip()
    if detail and detail[0].islower():
        detail = detail[0].upper() + detail[1:]
    if detail and detail[-1] not in ".!?":
        detail += "."
    return {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}


def encode_problem(status: int, detail: str, **extra: Any) -> bytes:
    return json.dumps(problem_body(status, detail, **extra), ensure_ascii=False).encode()
