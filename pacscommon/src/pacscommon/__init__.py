"""Shared code of the ChRIS PACS pull: storage engine, layout, index, networking."""

__version__ = "0.1.0"
