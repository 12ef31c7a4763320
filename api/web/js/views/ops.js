// Operator page (#/ops): events per second and projection lag over the last minutes,
// and each projection's version, position, lag and state. Polls GET /v1/projections
// (no consistency token: it must never wait) and keeps the history in this tab only.
import { h } from '../dom.js';

const EVERY_MS = 2000;
const KEEP_MS = 5 * 60 * 1000; // the charts show the last five minutes
const COLORS = ['#0095f6', '#ed4956', '#58c322', '#f5a623', '#8e44ad', '#16a085', '#d35400', '#2c3e50', '#c0392b'];
const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** A line chart of series {name: [[t, value], ...]} over [now - KEEP_MS, now]. */
function drawChart(box, series, now, unit) {
  const width = 640;
  const height = 180;
  const pad = 36;
  const values = Object.values(series).flat().map(([, v]) => v);
  const top = Math.max(1, ...values);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'ops-chart', role: 'img' });
  chart.append(svg('line', { x1: pad, y1: height - pad, x2: width, y2: height - pad, stroke: 'currentColor', 'stroke-opacity': 0.3 }));
  for (const frac of [0.5, 1]) {
    const y = height - pad - frac * (height - 2 * pad);
    chart.append(svg('line', { x1: pad, y1: y, x2: width, y2: y, stroke: 'currentColor', 'stroke-opacity': 0.1 }));
    const label = svg('text', { x: 2, y: y + 4, 'font-size': 11, fill: 'currentColor' });
    label.textContent = `${Math.round(top * frac)}`;
    chart.append(label);
  }
  const axis = svg('text', { x: pad, y: height - 8, 'font-size': 11, fill: 'currentColor' });
  axis.textContent = `last ${KEEP_MS / 60000} min (${unit})`;
  chart.append(axis);
  Object.entries(series).forEach(([name, points], i) => {
    if (!points.length) return;
    const xy = points.map(([t, v]) => {
      const x = pad + ((t - (now - KEEP_MS)) / KEEP_MS) * (width - pad);
      const y = height - pad - (v / top) * (height - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    chart.append(svg('polyline', { points: xy.join(' '), fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 2, 'data-series': name }));
  });
  const legend = h('ul', { class: 'ops-legend' }, Object.keys(series).map((name, i) => h('li', {},
    h('span', { class: 'ops-swatch', style: { background: COLORS[i % COLORS.length] } }), name)));
  box.replaceChildren(chart, legend);
}

export async function opsView(root, { signal }) {
  document.title = 'Operations • photostream';
  const rateBox = h('div', { class: 'ops-box', id: 'ops-rate' });
  const lagBox = h('div', { class: 'ops-box', id: 'ops-lag' });
  const table = h('tbody');
  const status = h('p', { class: 'muted', id: 'ops-status' }, 'Waiting for the first sample…');
  root.append(h('section', { class: 'ops' },
    h('h1', {}, 'Operations'),
    status,
    h('h2', {}, 'Events per second'), rateBox,
    h('h2', {}, 'Projection lag (events behind the log)'), lagBox,
    h('h2', {}, 'Projections'),
    h('table', { class: 'ops-table' },
      h('thead', {}, h('tr', {}, ['name', 'version', 'position', 'lag (events)', 'lag (s)', 'state'].map((c) => h('th', {}, c)))),
      table)));

  const rate = { 'events/s': [] };
  const lag = {};
  let last = null;
  const sample = async () => {
    const res = await fetch('/v1/projections', { headers: { Accept: 'application/json' }, signal });
    if (!res.ok) throw new Error(`GET /v1/projections answered ${res.status}`);
    const { items } = await res.json();
    const now = Date.now();
    const total = items.length ? items[0].position + items[0].lag_events : 0;
    if (last) rate['events/s'].push([now, Math.max(0, (total - last.total) / ((now - last.at) / 1000))]);
    last = { at: now, total };
    for (const p of items) (lag[p.name] ||= []).push([now, p.lag_events]);
    for (const points of [...Object.values(rate), ...Object.values(lag)]) {
      while (points.length && points[0][0] < now - KEEP_MS) points.shift();
    }
    drawChart(rateBox, rate, now, 'events/s');
    drawChart(lagBox, lag, now, 'events');
    table.replaceChildren(...items.map((p) => h('tr', { dataset: { projection: p.name } },
      h('td', {}, p.name), h('td', {}, `v${p.version}`), h('td', {}, p.position.toLocaleString()),
      h('td', {}, p.lag_events.toLocaleString()), h('td', {}, p.lag_seconds == null ? '' : p.lag_seconds.toFixed(1)),
      h('td', {}, p.building ? `${p.status} (building v${p.building})` : p.status))));
    status.textContent = `${total.toLocaleString()} events in the log · updated ${new Date(now).toLocaleTimeString()}`;
  };
  while (!signal.aborted) {
    try {
      await sample();
    } catch (err) {
      if (signal.aborted) return;
      status.textContent = `Cannot read the projections: ${err.message}`;
    }
    await new Promise((done) => setTimeout(done, EVERY_MS));
  }
}
