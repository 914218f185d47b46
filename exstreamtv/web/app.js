// EXStreamTV web page: channels with now/next, an HLS player (hls.js, vendored), the operator's read-only view.
// Every value from the server is set as text, never as markup.
"use strict";

const state = { overview: null, playing: null, hls: null, token: localStorage.getItem("exstreamtv.token") || "" };
// what the page observed while playing (read by the browser test and shown nowhere else)
// stalls: waits for data after playback had started (the first start is startupMs)
const watch = window.exstreamtv = { stalls: [], errors: [], waitingSince: null, channel: null, startupMs: null,
  requested: null };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function clock(t, seconds = false) {
  const opts = seconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return new Date(t * 1000).toLocaleTimeString([], opts);
}

function duration(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m` : `${s}s`;
}

async function api(path) {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) {
    document.getElementById("token-box").hidden = false;
    throw new Error("this server needs its read token");
  }
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

function healthClass(h) {
  return h === "idle" ? "muted" : h === "healthy" ? "ok" : h === "degraded" || h === "unknown" ? "warn" : h ? "bad" : "muted";
}

function renderChannels(ov) {
  const list = document.getElementById("channels");
  const offset = Date.now() / 1000 - ov.now; // the server's clock, as seen here
  list.replaceChildren(...ov.channels.map((ch) => {
    const now = ch.now[0], next = ch.next[0];
    const fine = now && now.end - now.start < 300; // short programmes: times to the second
    const body = el("div", {}, el("div", { class: "name", text: `${ch.number}  ${ch.name}` }));
    if (now) {
      const left = now.end - (Date.now() / 1000 - offset);
      const bar = el("div", { class: "bar" }, el("span", {
        style: `width:${Math.min(100, Math.max(0, 100 * (1 - left / (now.end - now.start)))).toFixed(1)}%` }));
      bar.dataset.start = now.start; bar.dataset.end = now.end;
      body.append(el("div", { class: "now", text: `Now: ${now.title}` }),
        el("div", { class: "muted", text: `${clock(now.start, fine)}–${clock(now.end, fine)} · ${duration(left)} left` }), bar);
    } else {
      body.append(el("div", { class: "now muted", text: ch.state === "scanning" ? "scanning media…" : "nothing to play" }));
    }
    if (next) body.append(el("div", { class: "next muted", text: `Next ${clock(next.start, fine)}: ${next.title}` }));
    const item = el("li", { "data-channel": String(ch.number), title: `Play channel ${ch.number}` },
      el("img", { src: ch.logo, alt: "", loading: "lazy" }), body);
    if (state.playing === ch.number) item.classList.add("playing");
    item.addEventListener("click", () => play(ch));
    return item;
  }));
}

function renderOperator(ov) {
  const rows = ov.channels.map((ch) => el("tr", {},
    el("td", { text: String(ch.number) }), el("td", { text: ch.state }),
    el("td", { class: healthClass(ch.health), text: ch.health || "–" }),
    el("td", { class: String(ch.breaker).toLowerCase() === "closed" ? "ok" : "bad", text: String(ch.breaker).toLowerCase() }),
    el("td", { text: String(ch.viewers) }),
    el("td", { text: ch.on_air ? `${ch.on_air.kind}: ${ch.on_air.title}` : "–" })));
  document.querySelector("#ops tbody").replaceChildren(...rows);
  document.getElementById("events").replaceChildren(...ov.events.slice().reverse().map((ev) =>
    el("li", { text: `${clock(ev.timestamp)} ${ev.message}` })));
  const loop = ov.loop || {};
  document.getElementById("server").textContent =
    `up ${duration(ov.uptime_seconds)} · ${ov.viewers} viewer(s) (${ov.hls.viewers} HLS) · FFmpeg ` +
    `${ov.pool.running}/${ov.pool.capacity} · memory ${Math.round(ov.pool.memory_percent)}% · loop lag ` +
    `${Math.round((loop.p99_ms ?? loop.max_ms ?? 0))} ms`;
}

async function refresh() {
  try {
    const ov = await api("/api/overview");
    state.overview = ov;
    renderChannels(ov);
    renderOperator(ov);
    if (state.playing === null) {
      const wanted = Number(new URLSearchParams(location.search).get("channel"));
      const ch = ov.channels.find((c) => c.number === wanted);
      if (ch) play(ch);
    }
  } catch (err) {
    document.getElementById("server").textContent = String(err.message || err);
  }
}

function play(ch) {
  const video = document.getElementById("video");
  state.playing = ch.number;
  watch.channel = ch.number;
  watch.requested = performance.now();
  watch.startupMs = null;
  document.getElementById("player-title").textContent = `Channel ${ch.number} · ${ch.name}`;
  document.querySelectorAll("#channels li").forEach((li) =>
    li.classList.toggle("playing", li.dataset.channel === String(ch.number)));
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({ liveSyncDurationCount: 3, manifestLoadingMaxRetry: 6, levelLoadingMaxRetry: 6,
      fragLoadingMaxRetry: 6 });
    hls.on(Hls.Events.ERROR, (_, data) => {
      watch.errors.push({ t: video.currentTime, type: data.type, details: data.details, fatal: data.fatal });
      if (data.fatal && data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (data.fatal && data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    });
    // A channel that was just started has only its first segment: playing at once would leave no
    // margin for the next one. Start once two target durations are buffered (or after 8 s anyway).
    let started = false;
    const begin = () => { if (!started) { started = true; video.play().catch(() => {}); } };
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      const b = video.buffered;
      const target = (hls.levels[0] && hls.levels[0].details && hls.levels[0].details.targetduration) || 2;
      if (b.length && b.end(b.length - 1) - video.currentTime >= 2 * target) begin();
    });
    setTimeout(begin, 8000);
    hls.loadSource(ch.hls);
    hls.attachMedia(video);
    state.hls = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = ch.hls; // Safari plays HLS itself
    video.play().catch(() => {});
  }
}

function watchStalls() {
  const video = document.getElementById("video");
  video.addEventListener("waiting", () => {
    if (watch.startupMs !== null && watch.waitingSince === null) watch.waitingSince = performance.now();
  });
  video.addEventListener("playing", () => {
    if (watch.startupMs === null && watch.requested !== null) watch.startupMs = performance.now() - watch.requested;
    if (watch.waitingSince !== null) {
      watch.stalls.push({ at: video.currentTime, ms: performance.now() - watch.waitingSince });
      watch.waitingSince = null;
    }
  });
}

function tickProgress() {
  if (!state.overview) return;
  const offset = Date.now() / 1000 - state.overview.now;
  document.querySelectorAll(".bar").forEach((bar) => {
    const start = Number(bar.dataset.start), end = Number(bar.dataset.end);
    const t = Date.now() / 1000 - offset;
    bar.firstChild.style.width = `${Math.min(100, Math.max(0, 100 * (t - start) / (end - start))).toFixed(1)}%`;
  });
}

document.getElementById("token-save").addEventListener("click", () => {
  state.token = document.getElementById("token").value.trim();
  localStorage.setItem("exstreamtv.token", state.token);
  document.getElementById("token-box").hidden = true;
  refresh();
});
watchStalls();
refresh();
setInterval(refresh, 5000);
setInterval(tickProgress, 1000);
