"""pacsretrieve: a ChRIS ds plugin that pulls chosen series out of a PACS."""

__version__ = "0.1.0"
