"""Card text: the one logical-line reader and writer, field extraction, repairs
and the fixes that make vobject keep a card's meaning. Imports nothing of Cardfile's."""
