"""The contacts layer: the one write path (accepting, repairing and storing a card),
categories and their views, published books, imports, duplicates, export and backup.
Built on card text (vcard/), the store (store/) and the Radicale adapter."""
