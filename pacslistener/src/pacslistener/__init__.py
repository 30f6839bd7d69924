"""pacslistener: a storage SCP that writes series into ChRIS's folder layout."""

__version__ = "0.1.0"
