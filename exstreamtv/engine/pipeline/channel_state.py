"""What a channel is doing, as the API, the console and the metrics show it."""

from __future__ import annotations

import enum


class ChannelState(str, enum.Enum):
    IDLE = "idle"  # nobody watching, nothing running
    STARTING = "starting"
    PLAYING = "playing"
    ERROR_SCREEN = "error_screen"  # viewers see the error screen (failure or operator slate)
    RECOVERING = "recovering"  # waiting for a restart to be allowed
    STOPPING = "stopping"
    UNAVAILABLE = "unavailable"  # nothing playable in the lineup
    SCANNING = "scanning"  # its media is still being probed (start-up of a new library)
