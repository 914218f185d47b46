"""The stability guards: the process pool every FFmpeg goes through, circuit breakers, restart guards and their token buckets, health."""
