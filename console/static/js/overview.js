// Overview: the whole deployment, live (a reading every 2 s, no reload): rates as
// small charts, depths of every stream, waiting sets, nodes, consumers, Redis.

import uPlot from "../vendor/uPlot.esm.js";
import { get } from "./api.js";
import { NAMES, Rates } from "./rates.js";
import { Badge, Problem, ago, duration, html, num, useEffect, useRef, useState } from "./ui.js";

export const POLL_MS = 2000;
const COLORS = {
  enqueued: "#1f4fd1",
  delivered: "#1a7f37",
  retried: "#9a6700",
  parked: "#8250df",
  expired: "#6e7781",
  dead: "#cf222e",
};

/** @param {{name: string, rates: Rates, tick: number}} props */
function Chart({ name, rates, tick }) {
  const box = useRef(/** @type {HTMLDivElement | null} */ (null));
  const plot = useRef(/** @type {uPlot | null} */ (null));
  useEffect(() => {
    const color = /** @type {Record<string, string>} */ (COLORS)[name];
    plot.current = new uPlot(
      {
        width: 250,
        height: 64,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [{ show: false }, { size: 36, font: "11px system-ui", ticks: { show: false }, grid: { stroke: "#eef1f4" } }],
        series: [{}, { stroke: color, fill: `${color}22`, width: 1.5, points: { show: false } }],
      },
      [[], []],
      /** @type {HTMLDivElement} */ (box.current),
    );
    // as wide as its tile: the grid gives each chart a share of the page's width
    const fit = () => {
      const w = box.current?.clientWidth;
      if (w && plot.current && Math.abs(plot.current.width - w) > 1) plot.current.setSize({ width: w, height: 64 });
    };
    const watch = new ResizeObserver(fit);
    if (box.current) watch.observe(box.current);
    fit();
    return () => {
      watch.disconnect();
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData([rates.x, rates.rate[name]]);
  }, [tick]);
  const now = rates.now(name);
  return html`<div class="chart" data-rate=${name} data-window-total=${rates.total(name)}>
    <div class="head">
      <span>${name}/s</span>
      <span class="now">${now === null ? "–" : now.toFixed(now < 10 ? 1 : 0)}</span>
    </div>
    <div class="plot" ref=${box}></div>
    <div class="small muted"><span class="window-total">${num(rates.total(name))}</span> in the last ${rates.span()} s</div>
  </div>`;
}

/** @param {{k: string, v: any, stat?: string}} props */
const Tile = ({ k, v, stat }) => html`<div class="tile" data-stat=${stat || k}><div class="k">${k.replace(/_/g, " ")}</div><div class="v">${num(v)}</div></div>`;

function Streams(/** @type {{stats: any}} */ { stats }) {
  return html`<div class="panel">
    <h2>Streams</h2>
    <table data-testid="streams">
      <thead><tr><th>priority</th><th class="num">depth</th><th class="num">pending</th><th class="num">lag</th></tr></thead>
      <tbody>
        ${Object.entries(stats.streams).map(
          ([prio, s]) => html`<tr data-stream=${prio}><td>${prio}</td><td class="num" data-k="length">${num(/** @type {any} */ (s).length)}</td><td class="num" data-k="pending">${num(/** @type {any} */ (s).pending)}</td><td class="num" data-k="lag">${num(/** @type {any} */ (s).lag)}</td></tr>`,
        )}
      </tbody>
    </table>
    <details class="small">
      <summary>per partition</summary>
      <table>
        <thead><tr><th>partition</th><th class="num">high</th><th class="num">normal</th><th class="num">low</th><th class="num">delayed</th><th class="num">in flight</th><th class="num">parked</th><th class="num">dead letters</th></tr></thead>
        <tbody>
          ${stats.partitions.map(
            (/** @type {any} */ p) => html`<tr><td>${p.partition}</td>
              ${["high", "normal", "low"].map((q) => html`<td class="num" title="depth / pending / lag">${p.streams[q].length} / ${p.streams[q].pending} / ${p.streams[q].lag}</td>`)}
              <td class="num">${num(p.delayed)}</td><td class="num">${num(p.inflight)}</td><td class="num">${num(p.parked)}</td><td class="num">${num(p.dead_letters)}</td></tr>`,
          )}
        </tbody>
      </table>
    </details>
  </div>`;
}

function Nodes(/** @type {{stats: any}} */ { stats }) {
  return html`<div class="panel">
    <h2>Edge nodes <span class="muted small">${stats.nodes_alive} alive</span></h2>
    <table data-testid="nodes">
      <thead><tr><th>node</th><th></th><th class="num">connections</th><th class="num">users</th><th>last heartbeat</th></tr></thead>
      <tbody>
        ${stats.nodes.map(
          (/** @type {any} */ n) => html`<tr data-node=${n.node_id}><td class="mono name" title=${n.node_id}>${n.node_id}</td><td><${Badge} status=${n.alive ? "alive" : "down"} /></td><td class="num" data-k="connections">${num(n.connections)}</td><td class="num">${num(n.users)}</td><td>${ago(n.last_seen)}</td></tr>`,
        )}
      </tbody>
    </table>
    <h2 style=${{ marginTop: "12px" }}>Consumers <span class="muted small">${stats.consumers_alive} alive</span></h2>
    <table data-testid="consumers">
      <thead><tr><th>consumer</th><th></th><th class="num">pending</th><th class="num">idle</th></tr></thead>
      <tbody>
        ${stats.consumers.map(
          (/** @type {any} */ c) => html`<tr data-consumer=${c.name}><td class="mono name" title=${c.name}>${c.name}</td><td><${Badge} status=${c.alive ? "alive" : "down"} /></td><td class="num">${num(c.pending)}</td><td class="num">${c.idle_ms === null ? "–" : `${(c.idle_ms / 1000).toFixed(1)} s`}</td></tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function Redis(/** @type {{redis: any, error: any}} */ { redis, error }) {
  if (error) return html`<div class="panel" data-testid="redis"><h2>Redis <${Badge} status="down" /></h2><${Problem} error=${error} /></div>`;
  if (!redis) return null;
  const mem = redis.maxmemory ? `${redis.used_memory_human} of ${(redis.maxmemory / 2 ** 20).toFixed(0)}M` : `${redis.used_memory_human} (no limit)`;
  return html`<div class="panel" data-testid="redis">
    <h2>Redis <${Badge} status="ok" /></h2>
    <dl class="facts">
      <dt>PING</dt><dd data-k="ping">${redis.ping_ms} ms</dd>
      <dt>version, role</dt><dd>${redis.redis_version}, ${redis.role}</dd>
      <dt>up</dt><dd data-k="uptime">${duration(redis.uptime_in_seconds)}</dd>
      <dt>memory</dt><dd>${mem}, policy ${redis.maxmemory_policy}</dd>
      <dt>clients</dt><dd>${num(redis.connected_clients)}</dd>
      <dt>commands/s</dt><dd>${num(redis.instantaneous_ops_per_sec)}</dd>
      <dt>AOF</dt><dd>${redis.aof_enabled ? `on (last write ${redis.aof_last_write_status})` : "off"}</dd>
    </dl>
  </div>`;
}

export function Overview() {
  const rates = useRef(new Rates());
  const [state, setState] = useState(/** @type {{stats: any, redis: any, error: any, redisError: any, tick: number}} */ ({ stats: null, redis: null, error: null, redisError: null, tick: 0 }));
  useEffect(() => {
    let stop = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const tick = async () => {
      const [stats, totals, redis] = await Promise.allSettled([get("v1/stats"), get("v1/stats/totals"), get("v1/stats/redis")]);
      if (stop) return;
      if (totals.status === "fulfilled") rates.current.add(totals.value, Date.now());
      setState((s) => ({
        stats: stats.status === "fulfilled" ? stats.value : s.stats,
        error: stats.status === "rejected" ? stats.reason : null,
        redis: redis.status === "fulfilled" ? redis.value : null,
        redisError: redis.status === "rejected" ? redis.reason : null,
        tick: s.tick + 1,
      }));
      timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, []);
  const { stats } = state;
  return html`<div data-testid="overview" data-readings=${state.tick}>
    <h1>Overview <span class="muted small">${stats ? `as of ${new Date(stats.time).toLocaleTimeString()}, every ${POLL_MS / 1000} s` : "loading…"}</span></h1>
    <${Problem} error=${state.error} />
    <div class="charts">${NAMES.map((n) => html`<${Chart} name=${n} rates=${rates.current} tick=${state.tick} />`)}</div>
    ${stats &&
    html`<div class="tiles" style=${{ margin: "14px 0" }}>
        <${Tile} k="delayed" v=${stats.delayed} />
        <${Tile} k="in_flight" stat="inflight" v=${stats.inflight} />
        <${Tile} k="parked" v=${stats.parked} />
        <${Tile} k="dead_letters" v=${stats.dead_letters} />
        <${Tile} k="online_users" v=${stats.online_users} />
        <${Tile} k="connections" v=${stats.connections} />
        <${Tile} k="nodes_alive" v=${stats.nodes_alive} />
        <${Tile} k="consumers_alive" v=${stats.consumers_alive} />
      </div>
      <div class="row">
        <${Streams} stats=${stats} />
        <${Nodes} stats=${stats} />
        <${Redis} redis=${state.redis} error=${state.redisError} />
      </div>`}
  </div>`;
}
