"""jCard (RFC 7095, ``application/vcard+json``) in and out of the API.

The conversion itself is the exporter's and the importer's (one writer, one
reader for the whole project); this module only fits them to single
contacts: one jCard in, exactly one vCard out, with errors a client can act on.
"""

from __future__ import annotations

import json
from typing import Any

from cardfile.plugin.api.problems import Problem
from cardfile.plugin.contacts.export import to_jcard
from cardfile.plugin.contacts.importers.jcard import read_jcards

__all__ = ["from_jcard", "to_jcard"]


def from_jcard(data: Any) -> str:
    """The vCard 4.0 text of one jCard (``["vcard", [...]]``)."""
    if not (isinstance(data, list) and len(data) == 2 and data[0] == "vcard"
            and isinstance(data[1], list)):
        raise Problem(422, 'a jCard is a JSON array ["vcard", [properties...]] (RFC 7095)')
    parsed = read_jcards(json.dumps(data), "body")
    skipped = [p for p in parsed.problems if p.skipped]
    if skipped or len(parsed.cards) != 1:
        reason = skipped[0].reason if skipped else "it holds no card"
        raise Problem(422, f"the jCard could not be read: {reason}")
    return parsed.cards[0].text
