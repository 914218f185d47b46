"""EXStreamTV: media files become always-on live TV channels that do not break."""

__version__ = "0.1.0"
