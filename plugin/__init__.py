"""Cardfile's Radicale storage plugin: ``[storage] type = cardfile.plugin``.

Radicale loads the class ``Storage`` from this module. Importing it also
installs the vobject fidelity fixes, so every process that can store a card
(the server, the CLI, a plain ``radicale`` with this plugin) writes cards the
same way.
"""

from cardfile.plugin import radicale_adapter
from cardfile.plugin.contacts.storage import Collection, Storage
from cardfile.plugin.vcard import vobject_fixes

vobject_fixes.install()
radicale_adapter.install_speedups()

__all__ = ["Collection", "Storage"]
