"""Cardfile's Radicale storage plugin: ``[storage] type = cardfile.plugin``.

Radicale loads the class ``Storage`` from this module. Importing it also
installs the vobject fidelity fixes, so every process that can store a card
(the server, the CLI, a plain ``radicale`` with this plugin) writes cards the
same way.
"""

from cardfile.plugin import radicale_adapter, vobject_fixes
from cardfile.plugin.storage import Collection, Storage

vobject_fixes.install()
radicale_adapter.install_speedups()

__all__ = ["Collection", "Storage"]
