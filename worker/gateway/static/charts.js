// lcstream operations, charts: hand-drawn SVG line charts (no library). x is time over the window
// (window_s back from the newest sample), y runs from 0 to a round top. A null value breaks its line.
// Each chart redraws as samples arrive and when its figure changes width. Colours are CSS variables.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_HEIGHT = 170;
const MARGIN = { left: 46, right: 12, top: 10, bottom: 22 };
const SERIES_COLORS = ["--s1", "--s2", "--s3", "--s4", "--s5", "--s6"].map((name) => `var(${name})`);
const FAILURE_COLORS = ["--failed", "--fail-2", "--fail-3", "--fail-4"].map((name) => `var(${name})`);
const drawn = new Map(); // plot element -> { figure, spec, width }: what to redraw on a resize

function svg(tag, attributes, parent) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (parent) parent.append(element);
  return element;
}

// A number for a tick label or a legend: short, and never "0.30000000000000004".
function fmt(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${+(value / 1e3).toFixed(1)}k`;
  if (abs >= 100 || Number.isInteger(value)) return String(Math.round(value));
  if (abs >= 10) return String(+value.toFixed(1));
  return String(+value.toFixed(2));
}

// The y axis: a round top and its step, giving 3 or 4 grid lines above 0 (whole steps for counts).
function niceScale(max, integer) {
  if (!(max > 0)) max = integer ? 3 : 1;
  if (integer) max = Math.max(max, 3);
  const magnitude = 10 ** Math.floor(Math.log10(max / 4));
  for (const decade of [magnitude, magnitude * 10]) {
    for (const multiple of [1, 2, 2.5, 5]) {
      const step = multiple * decade;
      if (integer && !Number.isInteger(step)) continue;
      const count = Math.ceil(max / step - 1e-9);
      if (count <= 4) return { step, count };
    }
  }
  return { step: max, count: 1 };
}

function spanLabel(seconds) {
  return seconds >= 120 ? `−${+(seconds / 60).toFixed(1)} min` : `−${Math.round(seconds)} s`;
}

// Draws spec ({ startMs, endMs, series: [{ name, color, points: [[time_ms, value|null]] }], integer,
// unit }) into the figure's .plot and .legend.
function drawChart(figure, spec) {
  const plot = figure.querySelector(".plot");
  const width = Math.max(200, Math.floor(plot.clientWidth));
  drawn.set(plot, { figure, spec, width });
  const height = CHART_HEIGHT;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  root.setAttribute("aria-label", figure.querySelector("figcaption").textContent);
  const [x0, x1, y0, y1] = [MARGIN.left, width - MARGIN.right, height - MARGIN.bottom, MARGIN.top];
  let max = 0;
  for (const series of spec.series) {
    for (const [, value] of series.points) if (Number.isFinite(value) && value > max) max = value;
  }
  const { step, count } = niceScale(max, spec.integer);
  const top = step * count;
  const yOf = (value) => y0 - (Math.max(0, value) / top) * (y0 - y1);
  const span = Math.max(1, spec.endMs - spec.startMs);
  const xOf = (time) => x0 + (Math.max(0, time - spec.startMs) / span) * (x1 - x0);

  for (let i = 0; i <= count; i++) {
    const value = +(i * step).toPrecision(12);
    const y = yOf(value);
    svg("line", { class: i ? "grid" : "axis", x1: x0, x2: x1, y1: y, y2: y }, root);
    svg("text", { class: "tick", x: x0 - 6, y: y + 3.5, "text-anchor": "end" }, root).textContent = fmt(value);
  }
  const seconds = span / 1000;
  const newest = new Date(spec.endMs).toLocaleTimeString();
  const xLabels = [[x0, "start", spanLabel(seconds)], [(x0 + x1) / 2, "middle", spanLabel(seconds / 2)], [x1, "end", newest]];
  for (const [x, anchor, text] of xLabels) {
    svg("text", { class: "tick", x, y: height - 6, "text-anchor": anchor }, root).textContent = text;
  }

  let points = 0;
  for (const series of spec.series) {
    const group = svg("g", { class: "series" }, root);
    group.style.stroke = series.color;
    group.style.fill = series.color;
    svg("title", {}, group).textContent = series.name;
    let run = [];
    const flush = () => {
      if (run.length === 1) svg("circle", { cx: run[0][0], cy: run[0][1], r: 2 }, group);
      if (run.length > 1) svg("polyline", { points: run.map((p) => p.join(",")).join(" ") }, group);
      run = [];
    };
    for (const [time, value] of series.points) {
      if (!Number.isFinite(value)) flush(); // null: a gap in the line
      else run.push([xOf(time).toFixed(1), yOf(value).toFixed(1)]);
    }
    flush();
    points += series.points.length;
  }
  if (points === 0) {
    svg("text", { class: "nodata", x: (x0 + x1) / 2, y: (y0 + y1) / 2, "text-anchor": "middle" }, root)
      .textContent = "no samples yet";
  }
  plot.replaceChildren(root);
  figure.querySelector(".legend").replaceChildren(...spec.series.map((series) => legendKey(series, spec.unit)));
}

function legendKey(series, unit) {
  const key = document.createElement("span");
  key.className = "key";
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = series.color;
  const name = document.createElement("span");
  name.textContent = series.name;
  const value = document.createElement("b");
  const latest = series.points.length ? series.points[series.points.length - 1][1] : null;
  value.textContent = Number.isFinite(latest) ? fmt(latest) + (unit || "") : "—";
  key.append(swatch, name, value);
  return key;
}

const resized = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const last = drawn.get(entry.target);
    if (last && Math.floor(entry.contentRect.width) !== last.width) drawChart(last.figure, last.spec);
  }
});

for (const figure of document.querySelectorAll("figure.chart")) {
  const legend = document.createElement("div");
  legend.className = "legend";
  const plot = document.createElement("div");
  plot.className = "plot";
  figure.append(legend, plot);
  resized.observe(plot);
}

// -- the five charts, from the samples (oldest first) --------------------------------------------

function endedKeys(samples) {
  const keys = new Set();
  for (const sample of samples) for (const key of Object.keys(sample.ended_per_s || {})) keys.add(key);
  const rank = (key) => (key === "completed" ? 0 : key.startsWith("failed") ? 1 : 2);
  return [...keys].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

function endedColor(key, index) {
  if (key === "completed") return "var(--completed)";
  if (key.startsWith("failed")) return FAILURE_COLORS[index % FAILURE_COLORS.length];
  return SERIES_COLORS[(index + 3) % SERIES_COLORS.length];
}

function perPartition(samples, field, partitions) {
  let count = partitions || 0;
  for (const sample of samples) if (Array.isArray(sample[field])) count = Math.max(count, sample[field].length);
  return Array.from({ length: count }, (_, i) => ({
    name: `D(${i})`,
    color: SERIES_COLORS[i % SERIES_COLORS.length],
    points: samples.map((s) => [s.time_ms, Array.isArray(s[field]) ? s[field][i] ?? null : null]),
  }));
}

function renderCharts(samples, windowS, partitions) {
  const newest = samples.length ? samples[samples.length - 1] : null;
  const endMs = newest ? newest.time_ms : Date.now();
  const base = { startMs: endMs - windowS * 1000, endMs, integer: false, unit: "" };
  const column = (pick) => samples.map((sample) => [sample.time_ms, pick(sample)]);
  const ms = (seconds) => (Number.isFinite(seconds) ? seconds * 1000 : null);

  chart("chart-events", newest, (s) => s.events_per_s ?? null, {
    ...base, series: [{ name: "events/s", color: "var(--accent)", points: column((s) => s.events_per_s) }],
  });
  let failures = 0;
  chart("chart-ended", newest, (s) => s.ended_per_s ?? null, {
    ...base,
    series: endedKeys(samples).map((key) => ({
      name: key,
      color: endedColor(key, key.startsWith("failed") ? failures++ : failures),
      points: column((s) => {
        const ended = s.ended_per_s;
        if (ended === null || ended === undefined) return null;
        return Object.prototype.hasOwnProperty.call(ended, key) ? ended[key] : 0;
      }),
    })),
  });
  chart("chart-lag", newest, (s) => s.lag ?? null, { ...base, integer: true, series: perPartition(samples, "lag", partitions) });
  chart("chart-pending", newest, (s) => s.pending ?? null, {
    ...base, integer: true, series: perPartition(samples, "pending", partitions),
  });
  chart("chart-delay", newest, (s) => ({ p50_s: s.delay_p50_s ?? null, p99_s: s.delay_p99_s ?? null }), {
    ...base,
    unit: " ms",
    series: [
      { name: "p50", color: "var(--accent)", points: column((s) => ms(s.delay_p50_s)) },
      { name: "p99", color: "var(--streaming)", points: column((s) => ms(s.delay_p99_s)) },
    ],
  });
}

// Draws one chart, then tells what it drew: the newest sample's seq and time, and its values as received.
function chart(id, newest, latest, spec) {
  const figure = document.getElementById(id);
  drawChart(figure, spec);
  if (newest) {
    figure.dataset.seq = String(newest.seq);
    figure.dataset.time = String(newest.time_ms);
    figure.dataset.latest = JSON.stringify(latest(newest));
  } else {
    delete figure.dataset.seq;
    delete figure.dataset.time;
    delete figure.dataset.latest;
  }
}
