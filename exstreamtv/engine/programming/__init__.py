"""Programming: collections, schedules with playback modes, time slots, filler, and the
deterministic playout built from them."""
