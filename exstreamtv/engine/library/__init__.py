"""Media libraries: shows, movies and other media with their metadata and artwork."""
