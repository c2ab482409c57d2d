"""The store: the card index and every query over it. The only package that speaks SQL.

Files are the truth (Radicale's multifilesystem layout, written by the
storage); this package keeps the derived SQLite index and answers every
question asked of a book from it: CardDAV listings, syncs and
``addressbook-query`` filters (``carddav_query``), and the contacts queries
the API, the CLI and the importers share (``contact_queries``: paging,
search, category members, the people duplicate matching compares). A
PostgreSQL store can sit behind the same methods.
"""
