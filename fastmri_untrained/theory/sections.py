"""Command line shared by the four ``scripts/reproduce_*.py`` theory scripts.

A script defines a config dataclass (the paper's sizes as defaults, ``quick()`` for the tests, a
``device`` field) and a dict of sections ``name -> fn(config, out_dir) -> dict``;
:func:`run_sections` parses ``--quick / --out / --only / --threads / --device / --set FIELD=VALUE``,
runs the chosen sections in order and rewrites ``results.json`` after each one (atomically), so an
interrupted run keeps every finished section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable, Mapping

import torch

from ..devices import parse_device
from ..errors import InputError
from ..files import atomic_path

THEORY_DEVICES = ("auto", "cpu", "cuda")


def apply_overrides(config, assignments: list[str]):
    """``config`` with fields replaced by ``FIELD=VALUE`` strings (VALUE parsed as JSON, else kept
    as a string; JSON lists become tuples where the field's default is a tuple)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        if not sep:
            raise InputError("--set", f"expected FIELD=VALUE, got {item!r}")
        if name not in fields:
            raise InputError("--set", f"unknown field {name!r}; fields: {', '.join(sorted(fields))}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, list) and isinstance(getattr(config, name), tuple):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        changes[name] = value
    return dataclasses.replace(config, **changes)


def _nan_to_none(o):
    """JSON has no NaN: write null (e.g. a required k never reached on the grid)."""
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    if isinstance(o, float) and math.isnan(o):
        return None
    return o


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_nan_to_none(data), indent=1, default=float))


def _torch_device(name: str) -> str:
    """``auto`` / ``cpu`` / ``cuda`` as a torch device name; InputError under the flag's name."""
    try:
        return parse_device(name).torch
    except InputError as err:
        raise InputError("--device", err.problem) from None


def run_sections(tag: str, description: str, config_cls, sections: Mapping[str, Callable], argv=None,
                 default_out: str | None = None) -> dict:
    """Parse the command line, run the chosen sections, write ``results.json``; return the results.

    ``--device`` (offered when ``config_cls`` has a ``device`` field) sets that field to a torch
    device name: ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``.
    """
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (the tests' size)")
    ap.add_argument("--out", type=Path, default=Path(default_out or f"outputs/{tag}"))
    ap.add_argument("--only", nargs="*", choices=list(sections), help="run only these sections")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="override config fields, e.g. --set table_size=128 'table_steps=[1500,3000,1800]'")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    has_device = any(f.name == "device" for f in dataclasses.fields(config_cls))
    if has_device:
        ap.add_argument("--device", choices=THEORY_DEVICES, default="auto",
                        help="where the networks and tensors live: auto (cuda if available, else cpu), cpu, cuda")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        cfg = apply_overrides(config_cls.quick() if args.quick else config_cls(), args.set)
        if has_device:
            cfg = dataclasses.replace(cfg, device=_torch_device(args.device))
    except InputError as err:
        ap.error(str(err))  # one line and exit status 2, like any other bad argument
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"config": dataclasses.asdict(cfg), "quick": args.quick, "overrides": args.set}
    for name, fn in sections.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        print(f"[{tag}] {name} ...", flush=True)
        results[name] = fn(cfg, args.out)
        results[name + "_seconds"] = time.perf_counter() - start
        _write_json(args.out / "results.json", results)
    return results
