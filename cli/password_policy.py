"""Which passwords ``cardfile user add`` and ``user passwd`` refuse, and why.

A Cardfile server holds a person's whole address book and may face a
network, where a password is guessed from lists of common ones first. So a
password is refused when it is shorter than ``MIN_LENGTH`` characters, when
it is one of the 20,000 most common passwords (``common-passwords.txt.gz``,
shipped with the package; see ``common-passwords.LICENSE``), or when it is
the user name, possibly with a few characters added. ``--allow-weak`` skips
these checks (for tests and throw-away servers). Passwords Cardfile makes
itself (the first-run user) are long random strings and pass.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

MIN_LENGTH = 10
_ADVICE = ("choose another: a few unrelated words, or one made by a password manager "
           "(or add --allow-weak to keep it anyway, e.g. on a test server)")


class WeakPassword(ValueError):
    """The password is refused; the message says why and what to do instead."""


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased (read once, on the first check)."""
    data = (resources.files("cardfile.cli") / "common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode("utf-8").split())


def check(name: str, password: str) -> None:
    """Raise ``WeakPassword`` if ``password`` is one a person should not use."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password is {len(password)} characters long; use at least "
                           f"{MIN_LENGTH}: {_ADVICE}")
    folded = password.casefold()
    if folded in common_passwords() or folded.strip() in common_passwords():
        raise WeakPassword(f"the password is on the list of the 20,000 most common passwords, "
                           f"which are guessed first; {_ADVICE}")
    user = name.casefold()
    if user and user in folded and len(folded.replace(user, "")) < MIN_LENGTH:
        raise WeakPassword(f"the password is the user name {name!r} (or little more); "
                           f"{_ADVICE}")
    if len(set(folded)) < 4:
        raise WeakPassword(f"the password uses only {len(set(folded))} different "
                           f"character(s); {_ADVICE}")
