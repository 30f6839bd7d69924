"""pacsquery: ask a PACS what it holds (C-FIND) and write the answer as success.txt."""

__version__ = "0.1.0"
