"""FFmpeg itself: finding the binary, typed command lines (encode and copy), whether a source may be
copied, which audio and subtitle streams air, and the ``-progress`` stream read back."""
