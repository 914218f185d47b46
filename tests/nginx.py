"""Debian's nginx in front of a server, configured by ``deploy/nginx.conf`` as shipped
(pointed at the given origin, a free port and private directories). Used by the tests and
``bench/hls.py``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def nginx_config(port: int, origin: str, tmp: Path) -> Path:
    """``deploy/nginx.conf`` as shipped, pointed at this test's ports and directories."""
    text = (REPO / "deploy" / "nginx.conf").read_text()
    cache = tmp / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    for old, new in (("listen 8080;", f"listen 127.0.0.1:{port};"), ("127.0.0.1:8411", origin),
                     ("/var/cache/nginx/exstreamtv", str(cache)), ("/run/exstreamtv-nginx.pid", str(tmp / "pid")),
                     ("/var/log/nginx/exstreamtv-error.log", str(tmp / "error.log")),
                     ("worker_processes auto;", "worker_processes 2;"),
                     ("user www-data;", "user root;")):  # workers can reach the test's private directories
        assert old in text, old
        text = text.replace(old, new)
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, origin: str, tmp: Path) -> None:
        assert shutil.which("nginx") or Path("/usr/sbin/nginx").exists(), "nginx is installed by .ci/run"
        self.port = free_port()
        self.tmp = tmp
        conf = nginx_config(self.port, origin, tmp)
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        check = subprocess.run([exe, "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([exe, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                                     stderr=subprocess.PIPE)

    def wait_ready(self) -> None:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
