"""Typed configuration loaded from YAML.

Every key is a dataclass field with its default, so the YAML file is optional and
``config/exstreamtv.yaml`` only documents the same values. Loading is strict: an
unknown key, a wrong type, a negative number, a missing media path or a duplicate
channel number stops start-up with one ``ConfigError`` that names the key and the
line, never a traceback.

``sections``: the engine's sections; ``onair``: channels, programming and libraries;
``loader``: the root ``Config``, loading and checking.
"""

from .loader import ENV_OVERRIDES, Config, config_to_dict, load_config, parse_config
from .onair import (WEEKDAYS, ChannelConfig, CollectionSpec, FillerConfig, LibraryConfig, LibraryScanConfig,
                    LineupEntry, ProfileOverride, ScheduleEntry, SlotEntry, SubtitleConfig, normalise_language)
from .sections import (AiAutoHealConfig, CacheConfig, CircuitBreakerConfig, DatabaseBackupConfig, ErrorScreenSettings,
                       FFmpegConfig, GuideConfig, HdhrConfig, HealthConfig, HlsConfig, ProcessPoolConfig,
                       ProgrammingConfig, RestartGuardConfig, ServerConfig, SessionManagerConfig, StoreConfig,
                       StreamingConfig, StreamThrottlerConfig)
from .spec import ConfigError

__all__ = ["AiAutoHealConfig", "CacheConfig", "ChannelConfig", "CircuitBreakerConfig", "CollectionSpec", "Config",
           "ConfigError", "DatabaseBackupConfig", "ENV_OVERRIDES", "ErrorScreenSettings", "FFmpegConfig",
           "FillerConfig", "GuideConfig", "HdhrConfig", "HealthConfig", "HlsConfig", "LibraryConfig",
           "LibraryScanConfig", "LineupEntry", "ProcessPoolConfig", "ProfileOverride", "ProgrammingConfig",
           "RestartGuardConfig", "ScheduleEntry", "ServerConfig", "SessionManagerConfig", "SlotEntry", "StoreConfig",
           "StreamThrottlerConfig", "StreamingConfig", "SubtitleConfig", "WEEKDAYS", "config_to_dict", "load_config",
           "normalise_language", "parse_config"]
