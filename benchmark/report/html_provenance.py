"""Where the HTML report's numbers come from: the command lines that made the runs, the
environments they ran in, the calibration searches they used and, for a merged report, the
folders and the conflicts between them. Everything from the data is escaped."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable, Sequence

from benchmark.report.cells import target_text
from benchmark.report.html_tables import escape, table
from benchmark.report.markdown import format_number
from benchmark.store.merge import Conflict, FolderRecords

#: Environment keys that differ from run to run by nature (not an environment difference).
PER_RUN_KEYS = ("started_at", "pid")
#: Environment keys shown first, in this order (others follow, sorted).
ENV_ORDER = ("python", "torch", "device", "device_name", "amp", "amp_dtype", "threads", "procs",
             "dist_backend", "cpu_model", "cpu_capability", "hostname", "git_commit")


def commands_html(folders: Sequence[FolderRecords], run_ids: Iterable[str]) -> str:
    """Per folder, the recorded command lines that planned at least one of the report's runs
    (``run_ids``), oldest first, each with when, where and how many of the report's runs it planned."""
    wanted = set(run_ids)
    parts = []
    for folder in folders:
        used = [c for c in folder.commands if wanted & set(c.get("run_ids") or [])]
        title = f"<h3>{escape(folder.root)}</h3>" if len(folders) > 1 else ""
        if not used:
            parts.append(f"{title}<p class=\"note\">No command line is recorded in {escape(folder.root)} for "
                         "these runs (runs made before prunebench recorded its command lines, or copied "
                         "in).</p>")
            continue
        items = []
        for record in used:
            planned = len(wanted & set(record.get("run_ids") or []))
            where = " · ".join(escape(record[k]) for k in ("started_at", "hostname") if record.get(k))
            cwd = f" · in <code>{escape(record['cwd'])}</code>" if record.get("cwd") else ""
            items.append(f'<li><pre class="command"><code>{escape(record["command"])}</code></pre>'
                         f'<span class="meta">{where}{cwd} · planned {planned} of these runs</span></li>')
        parts.append(f"{title}<ul class=\"commands\">{''.join(items)}</ul>")
    return "".join(parts)


def _env_value(value: Any) -> str:
    if isinstance(value, list):
        text = " ".join(map(str, value))
        return f"<details><summary>{len(value)} entries</summary><code>{escape(text)}</code></details>"
    if isinstance(value, dict):
        return f"<code>{escape(json.dumps(value, sort_keys=True))}</code>"
    return "—" if value is None else escape(value)


def environment_html(results: Sequence[dict[str, Any]]) -> str:
    """The distinct environments of the runs (software, device, CPU, host), one column each, with how
    many runs ran in it; keys that differ per run by nature (start time, pid) are left out."""
    counts: Counter[str] = Counter()
    for result in results:
        env = result.get("environment")
        if not isinstance(env, dict) or not env:
            continue  # a run that failed before it started records none
        counts[json.dumps({k: v for k, v in env.items() if k not in PER_RUN_KEYS}, sort_keys=True,
                          default=str)] += 1
    envs = [(json.loads(key), n) for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    keys = {k for env, _ in envs for k in env}
    if not keys:
        return '<p class="note">The runs recorded no environment.</p>'
    order = [k for k in ENV_ORDER if k in keys] + sorted(keys - set(ENV_ORDER))
    headers = [""] + [f"environment {i + 1} ({n} run{'s' if n > 1 else ''})" for i, (_, n) in enumerate(envs)]
    rows = [[f"<b>{escape(key)}</b>"] + [_env_value(env.get(key)) for env, _ in envs] for key in order]
    return table(headers, rows, [False] * len(headers), css="env")


def _calibration_row(c: dict[str, Any]) -> list[str]:
    hparams = c.get("method_hparams") if isinstance(c.get("method_hparams"), dict) else {}
    setting = ", ".join(f"{k}={v}" for k, v in sorted(hparams.items()) if k != c.get("hparam"))
    method = escape(c.get("method")) + (f' <span class="meta">[{escape(setting)}]</span>' if setting else "")
    tolerance = {True: "yes", False: '<span class="warn">no</span>'}.get(c.get("within_tolerance"), "—")
    target = target_text(c.get("target"))
    return [method, escape(f"{c.get('dataset')} / {c.get('model')}"), target, escape(c.get("hparam")),
            format_number(c.get("value"), ".4g"), format_number(c.get("sparsity"), ".2f", 100), tolerance,
            str(c.get("probes", 0)), format_number(c.get("probe_epochs"), "g"),
            format_number(c.get("probe_time_s"), ".1f"),
            escape(c.get("stop") or "in progress")]


def _calibration_order(c: dict[str, Any]) -> tuple:
    return tuple(str(c.get(k)) for k in ("method", "dataset", "model")) + (c.get("target") or 0.0,)


#: The calibration table's columns (after the folder, when several) and which are numbers.
CALIBRATION_COLUMNS = [("method", False), ("data / model", False), ("target", True), ("hparam", False),
                       ("value", True), ("sparsity (%)", True), ("within tolerance", False), ("probes", True),
                       ("probe epochs", True), ("probe time (s)", True), ("stopped because", False)]


def calibration_html(folders: Sequence[FolderRecords]) -> str:
    """Every calibration search of every folder: the method and cell, the value chosen, the sparsity
    it reached, how many probes it took and what they cost."""
    several = len(folders) > 1
    rows = [([escape(folder.root)] if several else []) + _calibration_row(c)
            for folder in folders for c in sorted(folder.calibrations, key=_calibration_order)]
    if not rows:
        return '<p class="note">No method of these runs searched a hyperparameter (no calibration cache).</p>'
    columns = ([("folder", False)] if several else []) + CALIBRATION_COLUMNS
    return table([h for h, _ in columns], rows, [num for _, num in columns])


def sources_html(folders: Sequence[FolderRecords], conflicts: Sequence[Conflict], duplicates: int) -> str:
    """The results folders the report read (several when merged), and what merging them found."""
    rows = [[escape(f.root), str(f.runs), str(len(f.commands)), str(len(f.calibrations))] for f in folders]
    text = table(["results folder", "trusted runs", "command lines recorded", "calibration searches"], rows,
                 [False, True, True, True])
    if len(folders) > 1:
        text += (f"<p>Runs are merged by run id (the hash of a run's specification). {duplicates} run(s) "
                 "present in several folders with identical content were counted once. Two different "
                 "results for one run id are a conflict: a complete result wins over a failed one, otherwise "
                 "the folder listed first wins.</p>")
    if conflicts:
        items = "".join(f"<li><code>{escape(c.run_id)}</code>: kept <code>{escape(c.kept)}</code>, left out "
                        f"<code>{escape(c.dropped)}</code> ({escape(c.why)})</li>" for c in conflicts)
        text += f'<p class="warn">{len(conflicts)} conflict(s):</p><ul>{items}</ul>'
    return text
