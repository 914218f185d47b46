"""Durable state and backups: survives restarts and kill -9, consistent online backups, rotation, refusal."""

import gzip
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from exstreamtv.engine.state.backup import BackupError, backup, list_backups, restore, verify
from exstreamtv.engine.state.store import Store

from .conftest import SMALL_PROFILE, channel, small_config
from .test_cli import EXE, free_port, wait_healthy


def make_event(i: int) -> dict:
    return {"id": i, "timestamp": 1000.0 + i, "kind": "test", "channel_id": 1, "message": f"event {i}",
            "data": {"i": i}}


def test_backup_while_writing_restores_consistently(tmp_path):
    store = Store(tmp_path / "db.sqlite", commit_interval=0.01)
    stop = threading.Event()
    written = [0]

    def writer():
        i = 1
        while not stop.is_set():
            store.add_event(make_event(i))
            written[0] = i
            i += 1
            time.sleep(0.0005)

    th = threading.Thread(target=writer)
    th.start()
    time.sleep(0.5)
    store.flush()
    committed_before = store._query("SELECT MAX(id) FROM events")[0][0]
    path = backup(tmp_path / "db.sqlite", tmp_path / "backups", compress=True, keep_count=7)
    time.sleep(0.3)
    stop.set()
    th.join()
    store.close()
    assert path.name.startswith("exstreamtv-") and path.name.endswith("Z.db.gz")
    target = tmp_path / "restored.sqlite"
    restore(path, target)
    con = sqlite3.connect(target)
    ids = [r[0] for r in con.execute("SELECT id FROM events ORDER BY id")]
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    assert ids == list(range(1, len(ids) + 1))  # no holes: a consistent snapshot
    assert len(ids) >= committed_before  # every event committed before the backup is in it
    assert written[0] > len(ids)  # writes went on after it


def test_rotation_keeps_exactly_keep_count(tmp_path):
    s = Store(tmp_path / "db.sqlite")
    s.close()
    for k in range(10):
        backup(tmp_path / "db.sqlite", tmp_path / "b", compress=k % 2 == 0, keep_count=4, now=1_700_000_000 + k)
    kept = list_backups(tmp_path / "b")
    assert len(kept) == 4
    assert [p.name for p in kept][-1].startswith("exstreamtv-20231114T2213")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not_ours"])
def test_corrupt_or_truncated_backup_is_refused(tmp_path, damage):
    s = Store(tmp_path / "db.sqlite")
    for i in range(1, 200):
        s.add_event(make_event(i))
    s.close()
    good = backup(tmp_path / "db.sqlite", tmp_path / "b", compress=True)
    bad = tmp_path / "bad.db.gz"
    if damage == "truncate":
        bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    elif damage == "garbage":
        bad.write_bytes(gzip.compress(b"SQLite format 3\x00" + b"\xff" * 5000))
    else:
        other = tmp_path / "other.db"
        sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
        bad.write_bytes(gzip.compress(other.read_bytes()))
    before = (tmp_path / "db.sqlite").read_bytes()
    with pytest.raises(BackupError) as err:
        restore(bad, tmp_path / "db.sqlite")
    assert str(bad) in str(err.value)
    assert (tmp_path / "db.sqlite").read_bytes() == before  # nothing replaced
    verify(good, tmp_path)  # the good one passes


async def test_events_and_epochs_survive_a_restart(server, media, tmp_path):
    data = tmp_path / "state"
    r = await server(small_config([channel(1, "One", media["long"])]), data_dir=data)
    epoch = r.engine.channels[1].schedule.epoch
    r.engine.request_channel_restart(1, source="api")
    r.engine.request_channel_restart(1, source="api")  # refused: cooldown
    await r.handle.stop()
    again = await server(small_config([channel(1, "One", media["long"])]), data_dir=data)
    assert again.engine.channels[1].schedule.epoch == epoch  # the schedule did not jump
    async with again.client() as c:
        events = (await c.get("/api/events")).json()["events"]
    kinds = [e["kind"] for e in events]
    assert "restart_accepted" in kinds and "restart_refused" in kinds
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_kill_9_loses_at_most_the_last_second_and_never_corrupts(tmp_path, media):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_PROFILE + f"channels:\n  - number: 1\n    name: One\n    lineup: [{media['long']}]\n"
                   "restart_guard:\n  channel_cooldown_seconds: 0\n  max_restarts: 100000\n")
    port = free_port()
    data = tmp_path / "d"
    proc = subprocess.Popen(EXE + ["--no-tui", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                                   "--data-dir", str(data)], stderr=subprocess.DEVNULL)
    import httpx

    base = f"http://127.0.0.1:{port}"
    accepted_at: list[float] = []
    try:
        wait_healthy(base, proc)
        t_end = time.time() + 3
        while time.time() < t_end:
            if httpx.post(base + "/api/channels/1/restart", json={}).status_code == 202:
                accepted_at.append(time.time())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
    con = sqlite3.connect(data / "exstreamtv.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = con.execute("SELECT COUNT(*) FROM events WHERE kind = 'restart_accepted'").fetchone()[0]
    con.close()
    older_than_a_second = sum(1 for t in accepted_at if t < killed_at - 1.0)
    assert stored >= older_than_a_second and stored <= len(accepted_at)


def test_restore_cli_refuses_while_server_runs_and_backup_cli_works(tmp_path, media):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_PROFILE + f"channels:\n  - number: 1\n    name: One\n    lineup: [{media['a']}]\n")
    data = tmp_path / "d"
    port = free_port()
    proc = subprocess.Popen(EXE + ["--no-tui", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                                   "--data-dir", str(data)], stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        out = subprocess.run(EXE + ["backup", "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "backup written" in out.stdout
        file = list_backups(data / "backups")[-1]
        refused = subprocess.run(EXE + ["restore", str(file), "--data-dir", str(data)], capture_output=True,
                                 text=True, timeout=60)
        assert refused.returncode == 2 and "a server is running" in refused.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    ok = subprocess.run(EXE + ["restore", str(file), "--data-dir", str(data)], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "broken.db.gz"
    broken.write_bytes(b"nope")
    bad = subprocess.run(EXE + ["restore", str(broken), "--data-dir", str(data)], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "not a readable backup" in bad.stderr and "Traceback" not in bad.stderr
