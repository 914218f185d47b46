"""What is on air: the media library as probed, the schedule (a pure function of config, library and stored epoch) and the guide built from it."""
