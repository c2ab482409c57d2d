"""Consent: who (a device, an app, a friend, another user) may see or change what, and how.

One model, one store, one check:

- ``store.py``: one JSON file per user (``<data>/grants/<user>.json``), written
  atomically under a folder lock, re-read by revision at every request;
- ``core.py``: the grants (device passwords, API tokens, web sessions) with
  their secrets as bcrypt hashes, and ``check`` (protocol, book, read-only);
- ``properties.py``: the one property filter (scopes such as ``email``) that
  friends' copies and property-limited tokens are cut with;
- ``friends.py``: me cards, invitations and the copies in friends' books.

The doors use it: ``dav/grant_guard.py`` for CardDAV (and Radicale's login,
through ``radicale_adapter.accept_logins``), ``api/__init__.py`` for the API
(``api/scoped_views.py`` for property-limited tokens), ``cli/grants.py``.

Sharing books and categories between users (designed, not built): a
``share`` grant in the owner's file, ``{"kind": "share", "with": USER, "book":
B, "category": C or null, "access": "r" | "rw", "state": "invited" |
"accepted"}``, with the same invite / accept / decline / expire / end as a
friendship (``friends.py``'s record and ``describe`` carry over unchanged).
A whole book maps onto Radicale 3.9's map sharing (``[sharing] type``,
``collection_by_map``): on accept the adapter writes Radicale's share row
(PathMapped ``/<with>/shared-<owner>-<book>/`` -> PathOrToken
``/<owner>/<book>/``, Permissions ``r`` or ``rw``, EnabledByOwner on invite,
EnabledByUser on accept), so CardDAV clients see it as one more book of
theirs and Radicale's own rights decide reads and writes; ending deletes the
row. A category share cannot be a Radicale share (Radicale shares whole
collections): it is a published book (``contacts/published.py``, which
already serves one category of a book as its own collection) placed in the
other user's home, writable only with ``rw``, read through the same
``check``. Property-limited shares would use ``properties.filter_card`` as
tokens do.
"""
