// Small SVG charts drawn by hand. Each has a text alternative (role="img" + aria-label) and the
// figures are also written out beside it, so nothing is told by colour or shape alone.
import { s } from "./ui.js";

const W = 240;
const H = 80;
const pad = { l: 4, r: 4, t: 6, b: 14 };

function frame(label, id) {
  return s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, id },
    s("defs", null, s("pattern", { id: "hatch", width: 4, height: 4, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
      s("rect", { width: 4, height: 4, fill: "#fff" }), s("line", { x1: 0, y1: 0, x2: 0, y2: 4, stroke: "#b42318", "stroke-width": 2 }))),
    s("line", { class: "axis", x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }));
}

function label(svg, buckets) {
  const n = buckets.length;
  const first = new Date(buckets[0].start);
  const fmt = (d) => `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  svg.append(s("text", { x: pad.l, y: H - 2 }, fmt(first)), s("text", { x: W - pad.r, y: H - 2, "text-anchor": "end" }, "now"));
  return n;
}

// outcomes draws, per bucket, delivered attempts as solid bars and failed ones hatched above them.
export function outcomesChart(buckets, id) {
  const max = Math.max(1, ...buckets.map((b) => b.attempts));
  const total = buckets.reduce((a, b) => a + b.attempts, 0);
  const ok = buckets.reduce((a, b) => a + b.delivered, 0);
  const svg = frame(`Delivery outcomes per 5 minutes over the last hour: ${ok} of ${total} attempts delivered`, id);
  const n = label(svg, buckets);
  const bw = (W - pad.l - pad.r) / n;
  const ph = H - pad.t - pad.b;
  buckets.forEach((b, i) => {
    const x = pad.l + i * bw + 1;
    const hOK = (b.delivered / max) * ph;
    const hFail = ((b.attempts - b.delivered) / max) * ph;
    const base = H - pad.b;
    const title = `${new Date(b.start).toLocaleTimeString()}: ${b.delivered} delivered, ${b.attempts - b.delivered} failed`;
    const g = s("g", null, s("title", null, title));
    if (hOK > 0) g.append(s("rect", { class: "ok", x, y: base - hOK, width: bw - 2, height: hOK }));
    if (hFail > 0) g.append(s("rect", { class: "fail", x, y: base - hOK - hFail, width: bw - 2, height: hFail }));
    svg.append(g);
  });
  return svg;
}

// latency draws the average latency per bucket as a line, a dot for each bucket with attempts.
export function latencyChart(buckets, id) {
  const vals = buckets.map((b) => b.latency_avg_ms);
  const max = Math.max(1, ...vals.filter((v) => v !== null));
  const svg = frame(`Average delivery latency per 5 minutes over the last hour, up to ${Math.round(max)} ms`, id);
  const n = label(svg, buckets);
  const bw = (W - pad.l - pad.r) / n;
  const ph = H - pad.t - pad.b;
  const pts = [];
  buckets.forEach((b, i) => {
    if (b.latency_avg_ms === null) return;
    const x = pad.l + i * bw + bw / 2;
    const y = H - pad.b - (b.latency_avg_ms / max) * ph;
    pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    svg.append(s("circle", { class: "dot", cx: x, cy: y, r: 2.5 },
      s("title", null, `${new Date(b.start).toLocaleTimeString()}: ${b.latency_avg_ms.toFixed(1)} ms average, ${b.latency_p95_ms.toFixed(1)} ms p95`)));
  });
  if (pts.length > 1) svg.insertBefore(s("polyline", { class: "line", points: pts.join(" ") }), svg.children[2]);
  svg.append(s("text", { x: pad.l, y: pad.t + 4 }, `${Math.round(max)} ms`));
  return svg;
}
