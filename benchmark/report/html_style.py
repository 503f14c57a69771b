"""The HTML report's stylesheet, inlined in its ``<style>`` element (no external stylesheet or font:
the page must open offline and survive being emailed). System fonts only."""
from __future__ import annotations

CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --rule: #d9dce1; --band: #f5f6f8; --accent: #0b5cad;
        --warn: #9a4a00; --warn-bg: #fff4e5; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 2.2rem 2rem 4rem; }
header.title { border-bottom: 2px solid var(--ink); padding-bottom: 0.8rem; margin-bottom: 1.4rem; }
h1 { font-size: 1.9rem; margin: 0 0 0.3rem; letter-spacing: -0.01em; }
h2 { font-size: 1.35rem; margin: 2.6rem 0 0.7rem; padding-bottom: 0.25rem;
     border-bottom: 1px solid var(--rule); }
h3 { font-size: 1.08rem; margin: 1.6rem 0 0.4rem; }
p { margin: 0.4rem 0 0.8rem; }
.subtitle, .meta, .note { color: var(--muted); }
.meta { font-size: 0.92rem; margin-top: 0; }
.note { font-size: 0.88rem; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
nav.toc { background: var(--band); border: 1px solid var(--rule); border-radius: 6px; padding: 0.7rem 1.2rem;
          margin: 1.2rem 0 0.5rem; display: inline-block; min-width: 20rem; }
nav.toc h2 { font-size: 0.95rem; margin: 0 0 0.3rem; border: none; padding: 0; text-transform: uppercase;
             letter-spacing: 0.06em; color: var(--muted); }
nav.toc ol { margin: 0; padding-left: 1.3rem; }
nav.toc ol ol { padding-left: 1.1rem; font-size: 0.93rem; }
.scroll { overflow-x: auto; margin: 0.4rem 0 1rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.3rem 0 0.8rem; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 0.88rem;
          padding-bottom: 0.3rem; }
thead th { border-top: 2px solid var(--ink); border-bottom: 1px solid var(--ink); font-weight: 600;
           vertical-align: bottom; }
tbody tr:last-child td, tbody tr:last-child th { border-bottom: 2px solid var(--ink); }
th, td { padding: 0.3rem 0.65rem; text-align: left; vertical-align: top; }
tbody tr:nth-child(even) { background: var(--band); }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
td.name, th.name { white-space: nowrap; }
table.pivot td.num { min-width: 8.5rem; }
table.pivot td.best { font-weight: 700; }
table.pivot tr.dense td { color: var(--muted); font-style: italic; }
table.board { font-size: 0.8rem; }
table.board th, table.board td { padding: 0.25rem 0.45rem; }
td.flag { color: var(--warn); min-width: 10rem; }
td.flagged { background: var(--warn-bg); }
sup { font-size: 0.72em; line-height: 0; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace;
            font-size: 0.86rem; }
pre.command { background: var(--band); border: 1px solid var(--rule); border-radius: 4px;
              padding: 0.55rem 0.8rem;
              white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.2rem 0; }
ul.commands { list-style: none; padding: 0; }
ul.commands li { margin-bottom: 0.9rem; }
figure { margin: 1.6rem 0 2.2rem; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: 0.92rem; color: var(--muted); margin: 0.5rem auto 0; max-width: 54rem; }
figcaption b { color: var(--ink); }
dl.hparams { display: grid; grid-template-columns: max-content auto; gap: 0 0.8rem; margin: 0; }
dl.hparams dt { color: var(--muted); }
dl.hparams dd { margin: 0; font-variant-numeric: tabular-nums; }
details summary { cursor: pointer; color: var(--accent); }
.legend { font-size: 0.9rem; color: var(--muted); border-left: 3px solid var(--rule); padding-left: 0.7rem; }
.warn { color: var(--warn); }
@media print { main { max-width: none; padding: 0; } nav.toc { display: none; } h2 { break-after: avoid; }
               figure, table { break-inside: avoid; } }
"""
