"""What the engine tells its operators: the event log, the ring of recent log lines the console
shows, and the event loop's own lag."""
