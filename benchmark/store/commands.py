"""The command lines that produced a results folder's runs: one small JSON record per grid invocation.

Each time the CLI runs a grid it writes ``<results>/commands/<UTC time, µs>-<pid>-<uuid>.json``
(atomically, never through a symbolic link, never outside the results folder)::

    {"format": 1, "command": "python run_benchmarks.py --methods gmp dnr --seeds 0 1",
     "argv": ["--methods", "gmp", "dnr", "--seeds", "0", "1"], "cwd": "/home/me/prunebench",
     "started_at": "2026-11-22T10:00:00Z", "hostname": "node3", "pid": 4242,
     "run_ids": ["3f1c…", …]}

One file per invocation rather than one file appended to: two runners may share a results folder
(the driver's locks make that safe), and a read-modify-write of one shared file would lose one of
two concurrent records; separate files need no lock. ``run_ids`` lists the runs the invocation
planned, so a report over some of the folder's runs shows the commands that made those runs.
A report rebuilt later (``python -m benchmark.report DIR``) reads them back with
:func:`read_commands`; a record that cannot be read is skipped (it never hides a run).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import socket
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmark.store.files import atomic_write_text, json_objects, json_safe, real_folder, utc_now
from benchmark.store.layout import ResultsLayout

#: Version of a command record's layout.
COMMAND_FORMAT = 1
#: How the CLI is invoked (the record's ``command`` is this plus the quoted arguments).
PROGRAM = "python run_benchmarks.py"


def command_text(argv: Sequence[str], program: str = PROGRAM) -> str:
    """The command line a user can paste into a shell: ``program`` plus ``argv`` quoted."""
    return f"{program} {shlex.join(argv)}".rstrip()


def record_command(root: str | Path, argv: Sequence[str], run_ids: Iterable[str],
                   program: str = PROGRAM) -> Path:
    """Record one grid invocation (its arguments ``argv``, without the program) in ``root``'s
    ``commands/`` folder; returns the file written. ``OSError`` when it cannot be written."""
    layout = ResultsLayout(Path(root))
    started = utc_now()
    record = {"format": COMMAND_FORMAT, "command": command_text(argv, program), "argv": list(argv),
              "cwd": os.getcwd(), "started_at": started, "hostname": socket.gethostname(),
              "pid": os.getpid(), "run_ids": sorted(set(run_ids))}
    real_folder(layout.root, layout.commands_dir)  # a linked commands/ is replaced, never written through
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")  # orders records of one second
    name = f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    text = json.dumps(json_safe(record), indent=1) + "\n"
    return atomic_write_text(layout.commands_dir / name, text, inside=layout.root)


def read_commands(root: str | Path) -> list[dict[str, Any]]:
    """Every readable command record of ``root``, oldest first (by ``started_at``, then file name).

    Symbolic links (the folder or a record) are not followed; a file that is not a JSON object
    with a ``command`` string is skipped. Each record gets ``file``: the path it was read from.
    """
    folder = ResultsLayout(Path(root)).commands_dir
    records = [{**data, "file": str(path)} for path, data in json_objects(folder)
               if isinstance(data.get("command"), str)]
    return sorted(records, key=lambda r: (str(r.get("started_at", "")), r["file"]))
