"""Prometheus metrics (``GET /metrics``) with prometheus-client.

A custom collector reads the engine at scrape time, so the numbers are the same ones the
API shows and nothing is counted twice. Counters that only events know (restarts by
reason) are kept by an event listener.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

from ..engine.engine import Engine
from ..engine.observe.events import Event

BREAKER_VALUE = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.restarts: Counter[tuple[str, str]] = Counter()  # (outcome, reason/source)
        engine.events.add_listener(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.kind == "restart_accepted":
            self.restarts[("accepted", ev.data.get("source", ""))] += 1
        elif ev.kind == "restart_refused":
            self.restarts[("refused", ev.data.get("reason", ""))] += 1

    def collect(self) -> Iterator[Metric]:
        e = self.engine
        sm = e.sessions
        live = sm.sessions(include_disconnected=True)
        g = GaugeMetricFamily("exstreamtv_sessions", "Viewer sessions by channel and state", labels=["channel", "state"])
        counts = Counter((str(s.channel_id), s.state.value) for s in live)
        for ch in e.channels:
            for state in ("created", "active", "idle", "error"):
                g.add_metric([str(ch), state], counts.get((str(ch), state), 0))
        yield g
        sent = CounterMetricFamily("exstreamtv_bytes_sent", "Bytes sent to viewers", labels=["channel"])
        per_channel: Counter[str] = Counter()
        for s in live:
            per_channel[str(s.channel_id)] += s.bytes_sent
        for ch in e.channels:
            sent.add_metric([str(ch)], per_channel.get(str(ch), 0))
        yield sent
        total = CounterMetricFamily("exstreamtv_bytes_sent_all", "Bytes sent to viewers, ended sessions included")
        total.add_metric([], sum(per_channel.values()) + sm.bytes_of_ended)
        yield total
        # duration_counts are cumulative already: a session counts in every bucket at or above it
        buckets = [("+Inf" if edge == float("inf") else str(edge), n)
                   for edge, n in zip(sm.duration_buckets, sm.duration_counts)]
        hist = HistogramMetricFamily("exstreamtv_session_duration_seconds", "Duration of ended viewer sessions",
                                     buckets=buckets, sum_value=sm.duration_sum)
        yield hist
        p = e.pool.snapshot()
        for name, doc, value in (("exstreamtv_pool_running", "FFmpeg processes running", p["running"]),
                                 ("exstreamtv_pool_capacity", "FFmpeg process cap", p["capacity"]),
                                 ("exstreamtv_pool_memory_percent", "System memory use", p["memory_percent"]),
                                 ("exstreamtv_pool_fds_used", "File descriptors in use", p["fd_used"])):
            m = GaugeMetricFamily(name, doc)
            m.add_metric([], value)
            yield m
        rej = CounterMetricFamily("exstreamtv_pool_rejected_spawns", "Spawns rejected by reason", labels=["reason"])
        for reason in ("capacity", "memory", "fd_reserve", "rate_limit", "circuit_open", "spawn_error",
                       "shutting_down"):
            rej.add_metric([reason], p["rejections_by_reason"].get(reason, 0))
        yield rej
        z = CounterMetricFamily("exstreamtv_pool_zombies_reaped", "Zombie or orphan processes reaped")
        z.add_metric([], p["zombies_reaped"])
        yield z
        br = GaugeMetricFamily("exstreamtv_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                               labels=["channel"])
        for n, b in sorted(e.breakers.items()):
            br.add_metric([str(n)], BREAKER_VALUE[b.state.value])
        yield br
        rs = CounterMetricFamily("exstreamtv_restarts", "Restart requests by outcome and source/reason",
                                 labels=["outcome", "reason"])
        for (outcome, reason), n in sorted(self.restarts.items()):
            rs.add_metric([outcome, reason], n)
        yield rs
        fams = {k: GaugeMetricFamily(f"exstreamtv_ffmpeg_{k}", doc, labels=["channel"]) for k, doc in (
            ("fps", "FFmpeg frames per second"), ("speed", "FFmpeg speed (1.0 = real time)"),
            ("bitrate_kbps", "FFmpeg output bitrate"), ("dropped_frames", "Frames dropped by FFmpeg"))}
        es = CounterMetricFamily("exstreamtv_error_screen_seconds", "Seconds of error screen sent",
                                 labels=["channel"])
        for ch in sorted(e.channels.values(), key=lambda c: c.number):
            running = ch.running
            prog = ch.progress
            fams["fps"].add_metric([str(ch.number)], prog.fps if running else 0)
            fams["speed"].add_metric([str(ch.number)], prog.speed if running else 0)
            fams["bitrate_kbps"].add_metric([str(ch.number)], prog.bitrate_kbps if running else 0)
            fams["dropped_frames"].add_metric([str(ch.number)], prog.drop_frames if running else 0)
            es.add_metric([str(ch.number)], ch.error_screen_seconds)
        yield from fams.values()
        yield es
        lag = e.loop_lag
        cache = e.cache.snapshot()
        for name, doc, value in (
                ("exstreamtv_cache_items", "Normalised cache: items done", cache["items"]),
                ("exstreamtv_cache_queued", "Normalised cache: items waiting", cache["queued"]),
                ("exstreamtv_cache_bytes", "Normalised cache: bytes on disk", cache["bytes"]),
                ("exstreamtv_cache_hit_ratio", "Normalised cache: airings served from it (of those that could be)",
                 cache["hit_rate"] or 0.0)):
            m = GaugeMetricFamily(name, doc)
            m.add_metric([], value)
            yield m
        cap = e.capacity.snapshot()
        fits = GaugeMetricFamily("exstreamtv_capacity_more_channels", "How many more channels fit, by how they air",
                                 labels=["mode"])
        fits.add_metric(["encode"], cap["more_encoding_channels"])
        fits.add_metric(["copy"], cap["more_copying_channels"])
        yield fits
        cost = GaugeMetricFamily("exstreamtv_channel_cpu_percent", "Measured CPU of one channel (percent of a core)",
                                 labels=["mode"])
        cost.add_metric(["encode"], cap["encode_cpu_percent"])
        cost.add_metric(["copy"], cap["copy_cpu_percent"])
        yield cost
        g = GaugeMetricFamily("exstreamtv_event_loop_lag_seconds", "Event-loop lag: latest sample, p99 and max over "
                              "the last minute", labels=["stat"])
        g.add_metric(["current"], lag.current)
        g.add_metric(["p99"], lag.percentile(0.99))
        g.add_metric(["max_1m"], lag.recent_max(60))
        yield g
        c = CounterMetricFamily("exstreamtv_event_loop_lag_over_threshold", "Loop-lag samples above the event "
                                "threshold (100 ms)")
        c.add_metric([], lag.over_threshold)
        yield c
        store = e.store
        if store is not None:
            f = CounterMetricFamily("exstreamtv_store_write_failures", "Database commits that failed (kept, retried)")
            f.add_metric([], store.write_failures)
            yield f
            p = GaugeMetricFamily("exstreamtv_store_pending_writes", "Writes kept while the database refuses them")
            p.add_metric([], store.pending_retries)
            yield p


def metrics_registry(engine: Engine) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EngineCollector(engine))
    return reg


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
