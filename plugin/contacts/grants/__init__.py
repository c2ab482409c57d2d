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

- ``shares.py``: books and categories shared between users, on the
  friendship's lifecycle; the recipient sees a view of the owner's book in
  their own home (``contacts/shared_book.py``), checked against the share at
  every request (``dav/share_guard.py`` refuses writes a share does not allow).

Sharing does not use Radicale 3.9's map sharing (``[sharing]``), though it
was the first design: turning it on sends every request of every user past
the index fast path, its database is read once at start (a share the CLI
accepts or ends would not reach a running server, so a revoke would not stop
the next request), and it shares whole collections only, so category shares
would need a second mechanism. One view serves both.
"""
