"""`python -m plantsim`: write day batches into the example's batch folder, data/batches.

    python -m plantsim seed                         # an empty folder gets the plant's first days
    python -m plantsim simulate                     # the next day after the newest batch
    python -m plantsim simulate --days 15 --scenario plantsim/scenarios/drift.yaml
    python -m plantsim replay ../shared/data/ai4i2020.csv [--days 1]

Run from the project root. The plant's start day, processes per day, seed and first days come
from the `plant` section of params.yaml. A batch already in the folder is never rewritten, and
each day's batch depends only on (seed, day, the scenario's knobs that day). Then `dvc repro`:
its `batches` stage records what arrived, and what depends on it is retrained.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any, Sequence

from .ai4i import PlantError, Scenario, parse_scenario
from .batches import list_batches, next_days, replay, simulate

DEFAULTS = {"start": "2024-01-01", "rows_per_day": 334, "seed": 11, "initial_days": 30}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plant = _settings(args)
        written = COMMANDS[args.command](args, plant)
    except (PlantError, OSError) as exc:
        print(f"plantsim: error: {exc}", file=sys.stderr)
        return 1
    if written is not None:
        days = [p.stem for p in written]
        shown = f"{days[0]} … {days[-1]}" if len(days) > 2 else ", ".join(days)
        print(f"wrote {len(written)} batch{'' if len(written) == 1 else 'es'} to {args.out}" + (f": {shown}" if days else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m plantsim", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed", help="when the folder holds no batch, write the plant's first days (plant.initial_days)")
    sim = sub.add_parser("simulate", help="write the next days (AI4I 2020 rules, with a scenario's shifts)")
    rep = sub.add_parser("replay", help="split a CSV in the AI4I 2020 layout (the real data) into day batches")
    rep.add_argument("source", help="the CSV, e.g. ../shared/data/ai4i2020.csv")
    sim.add_argument("--scenario", help="a YAML file of shifts by day (see plantsim/scenarios/drift.yaml)")
    for each, default in ((sim, "1"), (rep, "every day the file holds")):
        when = each.add_mutually_exclusive_group()
        when.add_argument("--days", type=int, help=f"how many days after the newest batch to write (default: {default})")
        when.add_argument("--until", help="write every day after the newest batch up to this one, YYYY-MM-DD")
    for each in (seed, sim, rep):
        each.add_argument("--out", default="data/batches", help="the batch folder (default: data/batches)")
        each.add_argument("--params", default="params.yaml", help="where the `plant` settings are (default: params.yaml)")
    return parser


def seed_command(args: argparse.Namespace, plant: dict[str, Any]) -> list[Path] | None:
    present = list_batches(args.out)
    if present:
        print(f"{args.out} holds {len(present)} batches ({present[0].day} … {present[-1].day}): nothing to seed")
        return None
    days = [plant["start"] + dt.timedelta(days=i) for i in range(plant["initial_days"])]
    return simulate(args.out, days, rows_per_day=plant["rows_per_day"], seed=plant["seed"])


def simulate_command(args: argparse.Namespace, plant: dict[str, Any]) -> list[Path]:
    scenario = Scenario()
    if args.scenario:
        scenario = parse_scenario(_load_yaml(Path(args.scenario)), plant["start"], args.scenario)
    days = next_days(args.out, plant["start"], count=_count(args), until=_until(args))
    return simulate(args.out, days, rows_per_day=plant["rows_per_day"], seed=plant["seed"], scenario=scenario)


def replay_command(args: argparse.Namespace, plant: dict[str, Any]) -> list[Path]:
    if not Path(args.source).is_file():
        raise PlantError(f"{args.source}: no such file; give a CSV in the AI4I 2020 layout")
    days = None
    if args.days is not None or args.until:
        days = next_days(args.out, plant["start"], count=_count(args), until=_until(args))
    return replay(args.source, args.out, days, start=plant["start"], rows_per_day=plant["rows_per_day"])


COMMANDS = {"seed": seed_command, "simulate": simulate_command, "replay": replay_command}


def _count(args: argparse.Namespace) -> int | None:
    if args.days is not None and args.days < 1:
        raise PlantError(f"--days {args.days}: give at least 1")
    return args.days


def _until(args: argparse.Namespace) -> dt.date | None:
    return _date(args.until, "--until") if args.until else None


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `plant` section of params.yaml over the defaults, checked."""
    path = Path(args.params)
    loaded = _load_yaml(path) if path.exists() else {}
    section = (loaded or {}).get("plant") or {}
    unknown = set(section) - set(DEFAULTS)
    if unknown:
        raise PlantError(f"{path}: plant.{sorted(unknown)[0]} is not a plant setting; settings: {', '.join(DEFAULTS)}")
    plant = {**DEFAULTS, **section}
    plant["start"] = _date(plant["start"], f"{path}: plant.start")
    for key in ("rows_per_day", "seed", "initial_days"):
        if not isinstance(plant[key], int) or isinstance(plant[key], bool) or plant[key] < (0 if key == "seed" else 1):
            raise PlantError(f"{path}: plant.{key} is {plant[key]!r}; give a whole number ≥ {0 if key == 'seed' else 1}")
    return plant


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlantError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def _date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise PlantError(f"{what} {value!r}: give a date as YYYY-MM-DD") from None


if __name__ == "__main__":
    sys.exit(main())
