"""Running a channel: its lifecycle, one FFmpeg segment at a time (commands, progress), recovery and slates, the standby that takes over, error screens."""
