"""The configuration root and its loading: YAML to typed sections, strict checks with the file,
line and key of every problem, environment overrides, and back to plain data."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from .onair import ChannelConfig, CollectionSpec, LibraryConfig, LibraryScanConfig, LineupEntry
from .sections import (AiAutoHealConfig, CacheConfig, CircuitBreakerConfig, DatabaseBackupConfig, ErrorScreenSettings,
                       FFmpegConfig, GuideConfig, HdhrConfig, HealthConfig, HlsConfig, ProcessPoolConfig,
                       ProgrammingConfig, RestartGuardConfig, ServerConfig, SessionManagerConfig, StoreConfig,
                       StreamingConfig, StreamThrottlerConfig)
from .spec import ConfigError


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ffmpeg: FFmpegConfig = field(default_factory=FFmpegConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    session_manager: SessionManagerConfig = field(default_factory=SessionManagerConfig)
    stream_throttler: StreamThrottlerConfig = field(default_factory=StreamThrottlerConfig)
    ai_auto_heal: AiAutoHealConfig = field(default_factory=AiAutoHealConfig)
    error_screen: ErrorScreenSettings = field(default_factory=ErrorScreenSettings)
    health: HealthConfig = field(default_factory=HealthConfig)
    hdhr: HdhrConfig = field(default_factory=HdhrConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    programming: ProgrammingConfig = field(default_factory=ProgrammingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    database_backup: DatabaseBackupConfig = field(default_factory=DatabaseBackupConfig)
    process_pool: ProcessPoolConfig = field(default_factory=ProcessPoolConfig)
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    restart_guard: RestartGuardConfig = field(default_factory=RestartGuardConfig)
    libraries: list[LibraryConfig] = field(default_factory=list)
    library_scan: LibraryScanConfig = field(default_factory=LibraryScanConfig)
    channels: list[ChannelConfig] = field(default_factory=list)
    source: str = field(default="<defaults>", metadata={"internal": True})


# ---------------------------------------------------------------- loading

class _Where:
    """Formats 'file:line: key.path' prefixes for messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def at(self, line: int | None, keypath: str) -> str:
        return f"{self.source}:{line}: {keypath}" if line else f"{self.source}: {keypath}"


def _line_of_key(node: Any, key: Any) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except Exception:
        return None


def _line_of_item(node: Any, index: int) -> int | None:
    try:
        return node.lc.item(index)[0] + 1
    except Exception:
        return None


def _line_of_node(node: Any) -> int | None:
    try:
        return node.lc.line + 1
    except Exception:
        return None


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, node: Any, keypath: str, line: int | None, w: _Where) -> Any:
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise ConfigError(f"{w.at(line, keypath or '<top level>')}: expected a mapping of keys, got {node!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        kline = _line_of_key(node, key) or line
        kp = f"{keypath}.{key}" if keypath else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{w.at(kline, kp)}: unknown key (known keys here: {known})")
        f = fields[key]
        kwargs[key] = _value(hints[key], value, f, kp, kline, w)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"{w.at(line, keypath or '<top level>')}: missing required key(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{w.at(line, keypath)}: {exc}") from None


def _value(tp: Any, value: Any, f: dataclasses.Field, kp: str, line: int | None, w: _Where) -> Any:
    where = w.at(line, kp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, kp, line, w)
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = args
        out = []
        for i, item in enumerate(value):
            iline = _line_of_item(value, i) or line
            if item_tp is LineupEntry and not isinstance(item, dict):
                out.append(LineupEntry(path=_convert_scalar(str, item, w.at(iline, f"{kp}[{i}]"))))
            elif dataclasses.is_dataclass(item_tp):
                out.append(_build(item_tp, item, f"{kp}[{i}]", iline, w))
            else:
                out.append(_convert_scalar(item_tp, item, w.at(iline, f"{kp}[{i}]")))
        return out
    if value is None:
        raise ConfigError(f"{where}: a value is required")
    converted = _convert_scalar(tp, value, where)
    minimum = f.metadata.get("minimum", 0)
    if isinstance(converted, (int, float)) and not isinstance(converted, bool) and minimum is not None \
            and converted < minimum:
        what = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise ConfigError(f"{where}: {what}, got {converted}")
    choices = f.metadata.get("choices")
    if choices and converted not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(choices)}, got {converted!r}")
    return converted


def _check_libraries(cfg: Config, root: Any, w: _Where, base_dir: Path) -> None:
    seq = root.get("libraries") if isinstance(root, dict) else None
    seen: dict[str, int] = {}
    for i, lib in enumerate(cfg.libraries):
        node = seq[i] if isinstance(seq, list) and i < len(seq) else None
        line = _line_of_key(node, "name") if node is not None else None
        if not lib.name.strip():
            raise ConfigError(f"{w.at(line, f'libraries[{i}].name')}: must not be empty")
        if lib.name in seen:
            raise ConfigError(f"{w.at(line, f'libraries[{i}].name')}: duplicate library name {lib.name!r} "
                              f"(also libraries[{seen[lib.name]}])")
        seen[lib.name] = i
        if not lib.paths:
            raise ConfigError(f"{w.at(line, f'libraries[{i}].paths')}: a library needs at least one folder")
        lib.paths = [str(p if p.is_absolute() else base_dir / p) for p in (Path(x).expanduser() for x in lib.paths)]


def _check_programming(cfg: Config, ch: ChannelConfig, node: Any, i: int, w: _Where) -> None:
    """Library names exist; slots do not overlap (same day, same time)."""
    libraries = {lib.name for lib in cfg.libraries}

    def check(spec: CollectionSpec | None, where: str, n: Any) -> None:
        if spec is not None and spec.library is not None and spec.library not in libraries:
            known = ", ".join(sorted(libraries)) or "none are configured"
            raise ConfigError(f"{w.at(_line_of_node(n) if n is not None else None, where)}: unknown library "
                              f"{spec.library!r} (libraries: {known})")

    for key, entries in (("schedule", ch.schedule), ("slots", ch.slots)):
        seq = node.get(key) if node is not None else None
        for j, e in enumerate(entries):
            n = seq[j] if isinstance(seq, list) and j < len(seq) else None
            check(e.collection, f"channels[{i}].{key}[{j}].collection.library", n)
    if ch.filler is not None:
        fn = node.get("filler") if node is not None else None
        for name in ("collection", "pre_roll", "post_roll", "mid_roll", "fallback"):
            check(getattr(ch.filler, name), f"channels[{i}].filler.{name}.library", fn)
    seen: dict[tuple[str, int], int] = {}
    seq = node.get("slots") if node is not None else None
    for j, s in enumerate(ch.slots):
        for d in s.days:
            other = seen.get((d, s.second_of_day))
            if other is not None:
                n = seq[j] if isinstance(seq, list) and j < len(seq) else None
                raise ConfigError(f"{w.at(_line_of_node(n) if n is not None else None, f'channels[{i}].slots[{j}]')}"
                                  f": overlaps slots[{other}] ({d} {s.at})")
            seen[(d, s.second_of_day)] = j


def _check_channels(cfg: Config, root: Any, w: _Where, base_dir: Path) -> None:
    seq = root.get("channels") if isinstance(root, dict) else None
    seen: dict[int, int] = {}
    for i, ch in enumerate(cfg.channels):
        node = seq[i] if isinstance(seq, list) and i < len(seq) else None
        line = _line_of_key(node, "number") if node is not None else None
        if ch.number in seen:
            raise ConfigError(f"{w.at(line, f'channels[{i}].number')}: duplicate channel number {ch.number} "
                              f"(also channels[{seen[ch.number]}])")
        seen[ch.number] = i
        if not ch.name.strip():
            raise ConfigError(f"{w.at(_line_of_key(node, 'name') if node is not None else None, f'channels[{i}].name')}"
                              ": must not be empty")
        if not ch.lineup and not ch.schedule and not ch.slots:
            raise ConfigError(f"{w.at(line, f'channels[{i}].lineup')}: a channel needs a lineup (files, folders, "
                              "libraries) or a schedule")
        if ch.lineup and (ch.schedule or ch.slots):
            raise ConfigError(f"{w.at(line, f'channels[{i}].schedule')}: a channel has a lineup or a schedule "
                              "(with slots), not both")
        _check_programming(cfg, ch, node, i, w)
        lineup_node = node.get("lineup") if node is not None else None
        libraries = {lib.name for lib in cfg.libraries}
        for j, entry in enumerate(ch.lineup):
            iline = _line_of_item(lineup_node, j) if lineup_node is not None else None
            if entry.library is not None:
                if entry.library not in libraries:
                    known = ", ".join(sorted(libraries)) or "none are configured"
                    raise ConfigError(f"{w.at(iline, f'channels[{i}].lineup[{j}].library')}: unknown library "
                                      f"{entry.library!r} (libraries: {known})")
                continue
            p = Path(entry.path or "").expanduser()
            if not p.is_absolute():
                p = base_dir / p
            if not p.exists():
                ch.warnings.append(f"{w.at(iline, f'channels[{i}].lineup[{j}]')}: media path does not exist: {p}")
            entry.path = str(p)
        if ch.logo:
            lp = Path(ch.logo).expanduser()
            if not lp.is_absolute():
                lp = base_dir / lp
            if not lp.is_file():
                lline = _line_of_key(node, "logo") if node is not None else None
                raise ConfigError(f"{w.at(lline, f'channels[{i}].logo')}: logo file does not exist: {lp}")
            ch.logo = str(lp)


ENV_OVERRIDES: dict[str, tuple[str, str, type]] = {
    "EXSTREAMTV_MAX_SESSIONS": ("session_manager", "max_sessions_per_channel", int),
    "EXSTREAMTV_MAX_SESSIONS_PER_ADDRESS": ("session_manager", "max_sessions_per_address", int),
    "EXSTREAMTV_THROTTLE_BITRATE": ("stream_throttler", "target_bitrate_bps", int),
    "EXSTREAMTV_THROTTLE_MODE": ("stream_throttler", "mode", str),
    "EXSTREAMTV_HOST": ("server", "host", str),
    "EXSTREAMTV_PORT": ("server", "port", int),
    "EXSTREAMTV_API_TOKEN": ("server", "api_token", str),
    "EXSTREAMTV_READ_TOKEN": ("server", "read_token", str),
}


def _apply_env(cfg: Config, env: typing.Mapping[str, str]) -> None:
    for var, (section, key, tp) in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        sect = getattr(cfg, section)
        f = next(f for f in dataclasses.fields(sect) if f.name == key)
        try:
            value: Any = tp(raw.strip()) if tp is not str else raw
        except ValueError:
            raise ConfigError(f"environment {var}={raw!r}: expected {_type_name(tp)}") from None
        value = _value(tp, value, f, f"{section}.{key}", None, _Where(f"environment {var}"))
        setattr(sect, key, value)
        post = getattr(sect, "__post_init__", None)
        if post is not None:
            try:
                post()
            except ValueError as exc:
                raise ConfigError(f"environment {var}: {exc}") from None
    if not 1 <= cfg.server.port <= 65535:
        raise ConfigError(f"server.port must be between 1 and 65535, got {cfg.server.port}")


def load_config(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or the defaults when None), then apply environment overrides."""
    env = os.environ if env is None else env
    if path is None:
        cfg = Config()
        _apply_env(cfg, env)
        return cfg
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    return parse_config(text, str(p), base_dir=p.parent, env=env)


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None,
                 env: typing.Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    w = _Where(source)
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"{w.at(line, 'YAML syntax')}: {exc.problem or exc.context}") from None
    except Exception as exc:  # ruamel raises a few unmarked kinds (duplicate keys, ...)
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if root is None:
        root = CommentedMap()
    if not isinstance(root, (CommentedMap, dict)):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(root).__name__}")
    cfg = _build(Config, root, "", _line_of_node(root), w)
    cfg.source = source
    _check_libraries(cfg, root, w, base_dir or Path.cwd())
    _check_channels(cfg, root, w, base_dir or Path.cwd())
    _apply_env(cfg, env)
    return cfg


def config_to_dict(cfg: Any) -> Any:
    """Plain dict of a config (for the API and for comparing the documented file with the defaults)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                if not f.metadata.get("internal")}
    if isinstance(cfg, list):
        return [config_to_dict(x) for x in cfg]
    return cfg
