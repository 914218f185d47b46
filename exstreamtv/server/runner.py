"""Runs the engine and the uvicorn server as tasks of one asyncio loop.

Used headless (``--no-tui``) and by the console (inside Textual's loop). uvicorn's own
signal capture is switched off: the application owns SIGINT/SIGTERM and shuts down in
the order that ends no stream abruptly and leaves no FFmpeg behind: viewers first, then
the HTTP server, then channels and the process pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import socket
import time
from typing import Any, Iterator

import uvicorn

from ..engine.engine import DataDirBusy, Engine, StateError
from .app import build_app
from .protocol import ConnectionGuard, guarded_protocol

log = logging.getLogger("exstreamtv.server")


class ServerStartError(Exception):
    pass


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the application handles signals
        yield


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit (systemd's default soft limit is
    1024); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
    """asyncio logs a traceback for every failed accept() when descriptors run out (and pauses
    accepting for a second, which is right): log it once per ``interval`` instead."""
    previous = loop.get_exception_handler()
    last = {"t": -interval, "n": 0}

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            last["n"] += 1
            now = time.monotonic()
            if now - last["t"] >= interval:
                log.warning("out of file descriptors: not accepting connections for now (%d times since the last "
                            "report): %s", last["n"], context.get("exception"))
                last["t"], last["n"] = now, 0
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class ServerHandle:
    """The engine + HTTP server pair: ``await start()``, then ``await stop()``."""

    def __init__(self, engine: Engine, host: str | None = None, port: int | None = None,
                 access_log: bool = False) -> None:
        self.engine = engine
        cfg = engine.config.server
        self.host = host or cfg.host
        self.port = cfg.port if port is None else port
        self.access_log = access_log
        self.server: EmbeddedServer | None = None
        self._task: asyncio.Task | None = None
        self._sock: socket.socket | None = None
        self._ssdp = None
        self.guard: ConnectionGuard | None = None
        self.app = None
        self._discovery = None
        self._control = None

    @property
    def urls(self) -> list[str]:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            hosts = ["127.0.0.1"]
            try:
                ip = socket.gethostbyname(socket.gethostname())
                if ip and not ip.startswith("127."):
                    hosts.append(ip)
            except OSError:
                pass
        else:
            hosts = [host]
        return [f"http://{h}:{self.port}" for h in hosts]

    async def start(self) -> None:
        self._sock = bind_socket(self.host, self.port)  # fail before any work when the port is taken
        if self.port == 0:
            self.port = self._sock.getsockname()[1]
        try:
            await self.engine.start()
        except (DataDirBusy, StateError) as exc:
            self._sock.close()
            await self.engine.stop()
            raise ServerStartError(str(exc)) from None
        except BaseException:
            self._sock.close()
            await self.engine.stop()
            raise
        cfg = self.engine.config.server
        files = raise_open_file_limit()
        pool = self.engine.config.process_pool
        # descriptors kept for FFmpeg pipes (about 4 per process), the store, logs and the guide
        reserve = pool.fd_reserve + 4 * pool.max_processes + 64
        most = max(16, min(cfg.limit_concurrency, files - reserve))
        if most < cfg.limit_concurrency:
            log.warning("open-file limit %d allows %d connections (server.limit_concurrency is %d)", files, most,
                        cfg.limit_concurrency)
        self.guard = ConnectionGuard(most, cfg.max_connections_per_address, cfg.header_timeout_seconds)
        quiet_accept_errors(asyncio.get_running_loop())
        self.app = build_app(self.engine, self.guard)
        config = uvicorn.Config(self.app, log_config=None, lifespan="off",
                                access_log=self.access_log, ws="none",
                                http=guarded_protocol(self.guard),
                                limit_concurrency=None,
                                timeout_keep_alive=cfg.timeout_keep_alive_seconds,
                                timeout_graceful_shutdown=3, h11_max_incomplete_event_size=16 * 1024)
        self.server = EmbeddedServer(config)
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self._sock]),
                                                            name="uvicorn")
        while not self.server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            exc = self._task.exception()
            await self.engine.stop()
            raise ServerStartError(f"HTTP server failed to start: {exc!r}")
        log.info("serving on %s", ", ".join(self.urls))
        self.app.control.urls = self.urls
        self._write_state()
        hd = self.engine.config.hdhr
        if hd.discovery_enabled:
            from .lan.discovery import start_control, start_discovery

            port = self.port
            configured = self.engine.config.server.base_url

            def base_for(local_ip: str) -> str:
                return configured.rstrip("/") if configured else f"http://{local_ip}:{port}"

            self._discovery = await start_discovery(self.host, hd.discovery_port, self.engine.hdhr_device_id,
                                                    base_for, hd.tuner_count)
            from ..engine.hdhr import control_values, tuner_status

            self._control = await start_control(self.host, hd.discovery_port, control_values(
                self.engine.hdhr_device_id, hd.tuner_count, lambda i: tuner_status(self.engine.tuners(), i)))
        if self.engine.config.hdhr.ssdp_enabled:
            from .lan.ssdp import start_ssdp

            base = self.engine.config.server.base_url or self.urls[-1]
            self._ssdp = await start_ssdp(self.engine.hdhr_device_id, base)

    def _write_state(self) -> None:
        """Where an attached console finds this server: ``server.json`` (URL, pid) in the data dir,
        and the control token in ``console.token``, readable by its owner only."""
        d = self.engine.data_dir
        local = f"http://127.0.0.1:{self.port}" if self.host in ("0.0.0.0", "", "127.0.0.1") else self.urls[0]
        if self.host == "::":
            local = f"http://[::1]:{self.port}"
        try:
            (d / "server.json").write_text(json.dumps({"url": local, "urls": self.urls, "pid": os.getpid()}))
            token = self.engine.config.server.api_token
            path = d / "console.token"
            if token:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(token)
                os.chmod(path, 0o600)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not write %s/server.json for attached consoles: %s", d, exc)

    def _remove_state(self) -> None:
        for name in ("server.json", "console.token"):
            try:
                (self.engine.data_dir / name).unlink(missing_ok=True)
            except OSError:
                pass

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._ssdp is not None:
            self._ssdp.close()
        if self._discovery is not None:
            self._discovery[0].close()
        if self._control is not None:
            self._control.close()
        self.engine.sessions.shutdown()  # ends every viewer stream
        if self.server is not None:
            self.server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except (asyncio.TimeoutError, Exception, SystemExit):
                self._task.cancel()
        await self.engine.stop()
        self._remove_state()
        if self._sock is not None:
            self._sock.close()
