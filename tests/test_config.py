from pathlib import Path

import pytest

from exstreamtv.engine.config import Config, ConfigError, config_to_dict, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent


def test_defaults_load_without_a_file():
    cfg = load_config(None, env={})
    assert cfg.server.port == 8411
    assert cfg.session_manager.max_sessions_per_channel == 50
    assert cfg.stream_throttler.mode == "realtime"
    assert cfg.circuit_breaker.failure_threshold == 5
    assert cfg.channels == []


def test_documented_default_file_matches_the_built_in_defaults():
    cfg = load_config(REPO / "config" / "exstreamtv.yaml", env={})
    assert config_to_dict(cfg) == config_to_dict(Config())
    for section in ("session_manager", "stream_throttler", "ai_auto_heal", "database_backup", "server", "ffmpeg",
                    "process_pool", "circuit_breaker", "restart_guard", "channels"):
        assert section in config_to_dict(cfg)


@pytest.mark.parametrize("text, expected", [
    ("server:\n  port: 8411\n  colour: red\n", "<t>:3: server.colour: unknown key"),
    ("session_manager:\n  max_sessions_per_channel: lots\n",
     "<t>:2: session_manager.max_sessions_per_channel: expected an integer, got 'lots'"),
    ("process_pool:\n  fd_reserve: -5\n", "<t>:2: process_pool.fd_reserve: must not be negative, got -5"),
    ("stream_throttler:\n  mode: warp\n", "<t>:2: stream_throttler.mode: must be one of"),
    ("server: [1, 2]\n", "server: expected a mapping"),
    ("server:\n  port: 99999\n", "port must be between 1 and 65535"),
    ("server:\n  port: [8411\n", "YAML syntax"),
    ("nonsense_section: {}\n", "<t>:1: nonsense_section: unknown key"),
    ("ai_auto_heal:\n  enabled: maybe\n", "<t>:2: ai_auto_heal.enabled: expected true or false"),
])
def test_bad_config_names_key_and_line(text, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(text, "<t>", env={})
    assert expected in str(err.value)


def test_missing_media_path_is_a_warning_named_with_its_line(tmp_path):
    """One channel's missing file must not stop the server: it is reported and skipped."""
    text = "channels:\n  - number: 1\n    name: One\n    lineup:\n      - /nope/missing.mp4\n"
    cfg = parse_config(text, "cfg.yaml", base_dir=tmp_path, env={})
    assert cfg.channels[0].warnings == ["cfg.yaml:5: channels[0].lineup[0]: media path does not exist: "
                                        "/nope/missing.mp4"]


def test_duplicate_channel_number(tmp_path):
    f = tmp_path / "x.mp4"
    f.write_bytes(b"x")
    text = (f"channels:\n  - number: 3\n    name: A\n    lineup: [{f}]\n"
            f"  - number: 3\n    name: B\n    lineup: [{f}]\n")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml", env={})
    assert "c.yaml:5: channels[1].number: duplicate channel number 3" in str(err.value)


def test_channel_requires_name_and_relative_paths_resolve(tmp_path):
    (tmp_path / "media").mkdir()
    with pytest.raises(ConfigError, match=r"channels\[0\]: missing required key\(s\): name"):
        parse_config("channels:\n  - number: 1\n    lineup: [media]\n", "c.yaml", base_dir=tmp_path, env={})
    cfg = parse_config("channels:\n  - number: 1\n    name: M\n    lineup: [media]\n", "c.yaml", base_dir=tmp_path,
                       env={})
    assert cfg.channels[0].paths == [str(tmp_path / "media")]


def test_env_overrides_win_over_file():
    env = {"EXSTREAMTV_MAX_SESSIONS": "7", "EXSTREAMTV_THROTTLE_BITRATE": "2000000",
           "EXSTREAMTV_THROTTLE_MODE": "burst", "EXSTREAMTV_HOST": "127.0.0.2", "EXSTREAMTV_PORT": "9000"}
    cfg = parse_config("server:\n  port: 1234\nsession_manager:\n  max_sessions_per_channel: 3\n", "<t>", env=env)
    assert cfg.session_manager.max_sessions_per_channel == 7
    assert cfg.stream_throttler.target_bitrate_bps == 2_000_000
    assert cfg.stream_throttler.mode == "burst"
    assert cfg.server.host == "127.0.0.2"
    assert cfg.server.port == 9000


@pytest.mark.parametrize("env, expected", [
    ({"EXSTREAMTV_PORT": "http"}, "environment EXSTREAMTV_PORT='http': expected an integer"),
    ({"EXSTREAMTV_THROTTLE_MODE": "fast"}, "must be one of"),
    ({"EXSTREAMTV_MAX_SESSIONS": "0"}, "must be at least 1"),
])
def test_bad_env_override_is_named(env, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(None, env=env)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", env={})
