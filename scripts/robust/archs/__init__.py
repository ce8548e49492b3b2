"""Network bodies (without input normalisation), one file per family; see ``robust.models``."""
