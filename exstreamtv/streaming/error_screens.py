"""Re-export of the error-screen API at the path the guide documents."""

from ..engine.pipeline.error_screens import (ErrorAudioMode, ErrorScreenConfig, ErrorScreenGenerator,
                                             ErrorScreenMessage, ErrorVisualMode, PreviewImage,
                                             get_error_screen_generator)

__all__ = ["ErrorAudioMode", "ErrorScreenConfig", "ErrorScreenGenerator", "ErrorScreenMessage", "ErrorVisualMode",
           "PreviewImage", "get_error_screen_generator"]
