"""Connected sources: address books kept in step with another service.

A source is a remote CardDAV address book, a vCard/CSV file at an http(s)
URL, or a local folder of ``.vcf`` files. Each fills an address book of its
own (``/<user>/source-<name>/``), read-only for clients, written only by the
sync through the one write path (``model.AddressBook``), so the index, sync
tokens and every client's view stay right. One concern per module:

- ``fetch.py``: the bounded HTTP client (size cap, redirect limit, timeouts);
- ``carddav.py``: discovery, ``sync-collection``, ETag listing and multiget;
- ``files.py``: a file at a URL, a local folder;
- ``registry.py``: a source's definition and state (files in its book's folder);
- ``secrets.py``: credentials, encrypted with a key outside the data folder;
- ``sync.py``: one refresh: fetch, then apply to the book in batches;
- ``consolidate.py``: a source's values in the main book, with provenance;
- ``refresher.py``: the background thread of ``cardfile serve``.

Every failure a source can cause is a ``SourceFailure`` (a ``Refused``): a
status line for the source, never an exception that reaches another user.
"""
