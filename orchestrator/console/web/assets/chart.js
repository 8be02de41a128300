// A small bar chart of sagas started, completed and rejected a minute,
// drawn as inline SVG.
const NS = "http://www.w3.org/2000/svg";
const series = [["started", "#6b8fd6"], ["completed", "#3c9a5f"], ["rejected", "#c8553d"]];

function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export function drawChart(box, minutes) {
  const w = 720, h = 150, left = 34, bottom = 20, top = 8;
  const max = Math.max(1, ...minutes.flatMap((m) => series.map(([k]) => m[k] || 0)));
  const slot = (w - left) / Math.max(1, minutes.length), bar = Math.max(2, (slot - 4) / series.length);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h + 18}`, width: "100%", role: "img", "aria-label": "sagas a minute", preserveAspectRatio: "xMinYMin meet" });
  chart.append(svg("line", { x1: left, x2: w, y1: y(0), y2: y(0), stroke: "#999" }));
  chart.append(svg("text", { x: left - 4, y: y(max) + 4, "text-anchor": "end", "font-size": 10 }, String(max)));
  chart.append(svg("text", { x: left - 4, y: y(0), "text-anchor": "end", "font-size": 10 }, "0"));
  minutes.forEach((m, i) => {
    const x0 = left + i * slot + 2;
    series.forEach(([k, color], j) => {
      const v = m[k] || 0;
      const r = svg("rect", { x: x0 + j * bar, y: y(v), width: bar - 1, height: y(0) - y(v), fill: color });
      r.append(svg("title", {}, `${new Date(m.at).toLocaleTimeString(undefined, { hour12: false })}: ${v} ${k}`));
      chart.append(r);
    });
    if (i % 3 === 0 || i === minutes.length - 1) {
      const at = new Date(m.at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
      chart.append(svg("text", { x: x0 + slot / 2 - 2, y: h - 4, "text-anchor": "middle", "font-size": 10 }, at));
    }
  });
  series.forEach(([k, color], j) => {
    chart.append(svg("rect", { x: left + j * 100, y: h + 6, width: 10, height: 10, fill: color }));
    const total = minutes.reduce((n, m) => n + (m[k] || 0), 0);
    chart.append(svg("text", { x: left + j * 100 + 14, y: h + 15, "font-size": 11 }, `${k} ${total}`));
  });
  box.replaceChildren(chart);
}
