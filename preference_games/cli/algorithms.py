"""``preference-games algorithms``: every registered algorithm with its paper, parameters and defaults, fixed point,
closed-form map and update rule, read from the algorithm itself and its tabular facts."""

from __future__ import annotations

import json

from .common import facts, jsonable, registry, show


def add_parser(commands) -> None:
    listing = commands.add_parser(
        "algorithms",
        help="list the registered alignment algorithms",
        description="Every registered algorithm with its paper, parameters and defaults, fixed point, closed-form "
        "map and update rule.",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object name -> {paper, params, ...}")
    listing.set_defaults(run=cmd_algorithms)


def modes(algorithm) -> list[str]:
    """The ``simulate --mode`` values the algorithm runs in on a table policy."""
    return ["exact", "sampled"] + (["closed-form"] if facts(algorithm).closed_form is not None else [])


def algorithm_report(name: str) -> dict:
    """What ``algorithms`` prints about one registered algorithm, read from the algorithm built with its defaults."""
    algorithms = registry()
    defaults = algorithms.parameters(name)
    entry = {"params": {k: jsonable(v) for k, v in defaults.items()}}
    try:
        algorithm = algorithms.make(name)
    except (ValueError, TypeError) as error:  # a required parameter: describe what the signature says
        return {**entry, "paper": None, "error": f"cannot build with default parameters: {error}"}
    known = facts(algorithm)
    return {
        **entry,
        "paper": algorithm.paper,
        "fixed_point_kind": known.fixed_point_kind,
        "closed_form": known.closed_form is not None,
        "update": algorithm.update,
        "modes": modes(algorithm),
        "uses_data": bool(algorithm.uses_data),
        "average_iterate": bool(known.average_iterate),
        "gap_tau": jsonable(known.gap_tau),
    }


def cmd_algorithms(args) -> int:
    reports = {name: algorithm_report(name) for name in registry().names()}
    if args.json:
        print(json.dumps(reports))
        return 0
    for name, report in reports.items():
        params = ", ".join(f"{k}={show(v)}" for k, v in report["params"].items()) or "no parameters"
        print(f"{name}  ({params})")
        if "error" in report:
            print(f"    {report['error']}")
            continue
        print(f"    paper:        {report['paper']}")
        print(f"    fixed point:  {report['fixed_point_kind']}")
        extras = [f"closed-form map: {'yes' if report['closed_form'] else 'no'}", f"update: {report['update']}",
                  f"modes: {', '.join(report['modes'])}"]
        if report["uses_data"]:
            extras.append("uses the data policy (--data)")
        if report["average_iterate"]:
            extras.append("its output is the average of the iterates")
        print(f"    {'; '.join(extras)}")
    print(f"\n{len(reports)} algorithms. Run one: preference-games simulate --algo NAME --game rps-variant "
          "--antisymmetrize")
    return 0
