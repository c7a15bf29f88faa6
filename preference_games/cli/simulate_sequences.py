"""``preference-games simulate --policy autoregressive``: train an autoregressive policy on a sequence game with
:func:`preference_games.sequence_runs.train` and report its exact duality gap along the run.

The options not given on the command line are left to ``train``, so its defaults are the command's; the report
reads them back from its signature.
"""

from __future__ import annotations

import inspect
import math
import sys

from . import SolverDiverged, UsageError
from .common import algorithm_params, facts, jsonable, make_algorithm, print_lines, tau_text
from .games import sequence_games

#: Options that describe a table game or a table run, by argparse name, with what stands in for each here.
TABLE_ONLY = {
    "ref": "the reference is the initial policy",
    "antisymmetrize": "a sequence game is constant-sum",
    "actions": "a sequence game has its own size",
    "data": "the data policy is the reference",
    "max_steps": "the run takes --steps steps",
}
#: ``simulate``'s option -> ``train``'s keyword, for those passed on only when given.
TRAIN_OPTIONS = {"steps": "steps", "lr": "lr", "batch": "batch", "labels": "labels", "eval_every": "eval_every",
                 "optimizer": "optimizer"}


def check_sequence_game(args) -> None:
    """Refuse what does not apply to an autoregressive policy, naming the fix."""
    if args.mode in ("exact", "closed-form"):
        raise UsageError(f"--mode {args.mode} updates every response's probability at once, which needs a table "
                         "policy; an autoregressive policy is a network whose responses are not enumerated in "
                         "training, so it learns from sampled pairs only (drop --mode)")
    names = ", ".join(sequence_games())
    if args.matrix:
        raise UsageError(f"--policy autoregressive trains on a sequence game, not on a --matrix; use --game with one "
                         f"of: {names} (or drop --policy autoregressive)")
    if args.game not in sequence_games():
        raise UsageError(f"{args.game!r} is not a sequence game; --policy autoregressive needs one of: {names} (or "
                         "drop --policy autoregressive for a table game)")
    given = [name for name in TABLE_ONLY if getattr(args, name) not in (None, False)]
    if given:
        flags = " ".join(f"--{name.replace('_', '-')}" for name in given)
        raise UsageError(f"{flags} do not apply to --policy autoregressive ({'; '.join(map(TABLE_ONLY.get, given))})")


def _curve(steps, values) -> list[list]:
    """[[step, value], ...] of a recorded curve."""
    return [[int(step), float(value)] for step, value in zip(steps, values)]


def _finite(value: float | None) -> float | None:
    """A number for JSON: None where it is not finite (a rate measured over no time, say)."""
    return None if value is None or not math.isfinite(value) else float(value)


def sequence_report(args) -> dict:
    """Train as the arguments ask and collect what ``simulate --policy autoregressive`` prints."""
    check_sequence_game(args)
    given = algorithm_params(args)
    algorithm = make_algorithm(args.algo, given)

    from ..sequence_runs import train
    from ..sequences import sequence_game_by_name

    options = {TRAIN_OPTIONS[name]: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    try:
        run = train(algorithm, sequence_game_by_name(args.game, args.seed), seed=args.seed, progress=progress,
                    **options)
    except FloatingPointError as error:  # train's divergence: a non-finite loss
        raise SolverDiverged(str(error)) from None
    defaults = {name: p.default for name, p in inspect.signature(train).parameters.items()
                if p.default is not inspect.Parameter.empty}
    settings = {**defaults, **options}
    known = facts(algorithm)
    return {
        "algorithm": algorithm.describe(),
        "paper": algorithm.paper,
        "game": args.game,
        "policy": "autoregressive",
        "mode": "sampled",
        "steps": int(run.steps[-1]),
        "lr": settings["lr"],
        "batch": settings["batch"],
        "labels": settings["labels"],
        "optimizer": settings["optimizer"],
        "eval_every": settings["eval_every"],
        "seed": args.seed,
        "tau": jsonable(known.gap_tau),
        "initial_duality_gap": run.initial_duality_gap,
        "final_duality_gap": run.final_duality_gap,
        "duality_gap": _curve(run.steps, run.duality_gap),
        "kl_to_fixed_point": None if run.kl_to_fixed_point is None else _curve(run.steps, run.kl_to_fixed_point),
        "fixed_point_kind": known.fixed_point_kind,
        "mixture_tv": run.mixture_tv,
        "pairs": run.pairs,
        "seconds": run.seconds,
        "pairs_per_second": _finite(run.pairs_per_second),
    }


def print_sequence_run(report: dict) -> None:
    print(f"{report['algorithm']} on {report['game']}: autoregressive policy, {report['steps']} sampled steps of "
          f"{report['batch']} pairs ({report['labels']} labels), {report['optimizer']} at lr = {report['lr']:g}, "
          f"seed {report['seed']}")
    first, last = report["initial_duality_gap"], report["final_duality_gap"]
    if last == 0:
        ratio = "zero at the end"
    else:
        ratio = f"{first / last:.3g}x smaller" if last <= first else f"{last / first:.3g}x larger"
    lines = [(f"duality gap at tau = {tau_text(report['tau'])}", f"{first:.3e} -> {last:.3e}   ({ratio})"),
             ("fixed point", report["fixed_point_kind"])]
    kl = report["kl_to_fixed_point"]
    if kl is not None:
        lines.append(("KL(pi || fixed point)", f"{kl[0][1]:.3e} -> {kl[-1][1]:.3e}"))
    if report["mixture_tv"] is not None:
        lines.append(("mixture TV", f"{report['mixture_tv']:.3e}   (token-level against sequence-level mixture, "
                                    "final policy)"))
    speed = report["pairs_per_second"]
    lines.append(("time", f"{report['seconds']:.1f} s training ({report['pairs']} pairs"
                          + (f", {speed:,.0f} pairs/s)" if speed is not None else ")")))
    print_lines(lines)
