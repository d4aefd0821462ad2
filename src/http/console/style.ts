/**
 * The operator console's stylesheet, served as `GET /console/console.css`.
 * A file of its own because the page's Content-Security-Policy allows no
 * inline style: everything, the chart's series colours included, is a class.
 *
 * @module
 */

/** The console's CSS: a two-column grid on a laptop screen, one column below 960 px. */
export const CONSOLE_STYLE: string = `:root {
  color-scheme: light;
  --fg: #1d2125; --muted: #5b6570; --line: #d5dae0; --bg: #f5f7f9; --card: #fff;
  --accent: #0b5cad; --bad: #b3261e; --good: #1b7a3d;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #14263a; color: #fff; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header .status { margin: 0 0 0 auto; font-size: 13px; color: #d6e2ee; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 0; }
button { font: inherit; padding: 4px 12px; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent);
  color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
header button.secondary { border-color: #fff; }
button:disabled { opacity: .55; cursor: default; }
input { font: inherit; padding: 5px 8px; border: 1px solid #8a949e; border-radius: 4px; min-width: 0; }
:focus-visible { outline: 3px solid #f0a202; outline-offset: 2px; }
.signin { max-width: 420px; margin: 64px auto; padding: 24px; background: var(--card); border: 1px solid var(--line);
  border-radius: 6px; }
.signin form { display: flex; align-items: center; gap: 8px; margin-top: 8px; }
.signin input { flex: 1; }
.error { color: var(--bad); font-weight: 600; margin: 10px 0 0; }
.hint, .caption { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 14px; padding: 14px 20px; }
@media (max-width: 960px) { .grid { grid-template-columns: minmax(0, 1fr); } }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
  min-width: 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: 12.5px; padding-bottom: 6px; }
.scroll { overflow-x: auto; }
th, td { padding: 3px 6px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th[scope=col] { font-weight: 600; font-size: 12.5px; white-space: normal; }
th[scope=col]:first-child, th[scope=row] { text-align: left; }
th[scope=row] { font-weight: 400; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
.d1 { padding-left: 20px; } .d2 { padding-left: 32px; } .d3 { padding-left: 44px; } .d4 { padding-left: 56px; }
td.nonzero-bad { color: var(--bad); font-weight: 600; }
.chart svg { width: 100%; height: auto; display: block; }
.chart .axis { stroke: #8a949e; stroke-width: 1; }
.chart .grid-line { stroke: #e6e9ed; stroke-width: 1; }
.chart text { fill: var(--muted); font-size: 11px; }
.chart polyline { fill: none; stroke-width: 2; stroke-linejoin: round; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; padding: 0; margin: 6px 0 0; font-size: 12.5px; }
.legend span.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px; }
.s0 { stroke: #0b5cad; background: #0b5cad; } .s1 { stroke: #d9480f; background: #d9480f; }
.s2 { stroke: #2b8a3e; background: #2b8a3e; } .s3 { stroke: #862e9c; background: #862e9c; }
.s4 { stroke: #c2255c; background: #c2255c; } .s5 { stroke: #0c8599; background: #0c8599; }
.s6 { stroke: #5c940d; background: #5c940d; } .s7 { stroke: #495057; background: #495057; }
.dead-branch { border-top: 1px solid var(--line); padding: 8px 0; }
.dead-branch:first-child { border-top: 0; }
.dead-head { display: flex; align-items: baseline; gap: 10px; }
.dead-head .count { font-variant-numeric: tabular-nums; }
.dead-head .count.bad { color: var(--bad); font-weight: 600; }
.dead-head button { margin-left: auto; }
.dead-list { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12.5px; }
.dead-list li { padding: 2px 0; }
.dead-error { display: block; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.report { margin: 4px 0 0; font-size: 12.5px; color: var(--good); }
.tail-controls { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.tail-controls input { flex: 1; font-family: ui-monospace, Menlo, Consolas, monospace; }
.tail-body { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 10px; margin-top: 8px; }
ol.tail { list-style: none; margin: 0; padding: 0; max-height: 300px; overflow: auto; border: 1px solid var(--line);
  border-radius: 4px; }
ol.tail li { border-bottom: 1px solid var(--line); }
ol.tail button { display: grid; grid-template-columns: minmax(0, 1fr) auto; width: 100%; text-align: left;
  background: #fff; color: var(--fg); border: 0; border-radius: 0; padding: 3px 8px; font-size: 12.5px; }
ol.tail button:hover, ol.tail li.selected button { background: #e7f0fa; }
ol.tail .name { font-family: ui-monospace, Menlo, Consolas, monospace; overflow: hidden; text-overflow: ellipsis; }
ol.tail .meta { color: var(--muted); grid-column: 1 / -1; }
pre.detail { margin: 0; max-height: 300px; overflow: auto; background: #f0f3f6; border: 1px solid var(--line);
  border-radius: 4px; padding: 8px; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
`;
