"""``preference-games plot KIND --out DIR``: draw a figure of the exact dynamics and write it as PNG and SVG."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from ..games import FIGURE9_LR
from . import SolverDiverged, UsageError
from .common import (add_algorithm_arguments, add_game_arguments, algorithm_params, facts, game_from_args,
                     make_algorithm, output_folder, registry)
from .simulate import DEFAULT_LR, run_settings

PLOT_KINDS = ("figure9", "dynamics", "field", "contour", "convergence", "tau-path")
#: Kinds drawn on the probability simplex: 3-action games only.
SIMPLEX_KINDS = ("figure9", "dynamics", "field", "contour", "tau-path")
#: ``plot contour --metric``: the quantity shaded, as :func:`~preference_games.plotting.plot_contours` names it.
CONTOUR_METRICS = {"gap": "duality-gap", "kl": "kl"}
#: ``plot contour``'s τ without --tau and without an --algo (with one: the τ its duality gap is measured at).
CONTOUR_TAU = 0.1
PLOT_FORMATS = ("png", "svg")
#: ``plot``'s default step count (``figure9`` uses :func:`~preference_games.plotting.figure9_run`'s own 400).
PLOT_STEPS = 300
#: ``plot dynamics``: the starting policies (of prompt 0; other prompts start at π_ref), one line per algorithm each.
PLOT_STARTS = ((0.8, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.1, 0.8))


def _plot_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in PLOT_FORMATS]
    if not formats or unknown:
        raise UsageError(f"--formats: a comma-separated list of {', '.join(PLOT_FORMATS)}; got {text!r}")
    return list(dict.fromkeys(formats))


def _plot_algorithms(args) -> list[tuple[str, object, dict, dict]]:
    """(name, algorithm, given parameters, run settings) for every ``--algo``, built by :func:`algorithm_params`,
    :func:`make_algorithm` and :func:`~.simulate.run_settings` as ``simulate`` builds its one. With several
    algorithms, ``--beta``, ``--tau``, ``--eta`` and ``--param`` go to those that take them (each must be taken by at
    least one), and ``--lr`` to those that take gradient steps; with one algorithm the rules are exactly
    ``simulate``'s."""
    algorithms = registry()
    names = list(dict.fromkeys(args.algo))
    shared = len(names) > 1
    built = []
    for name in names:
        one = argparse.Namespace(**vars(args))
        one.algo = name
        one.sampled, one.mode, one.batch, one.labels, one.max_steps, one.data = False, None, None, None, None, None
        if shared and name in algorithms.names():
            accepted = algorithms.parameters(name)
            for flag in ("beta", "tau", "eta"):
                if flag not in accepted:
                    setattr(one, flag, None)
            one.param = [item for item in args.param or [] if item.partition("=")[0].strip() in accepted]
        given = algorithm_params(one)
        algorithm = make_algorithm(name, given)
        built.append((name, algorithm, given, run_settings(one, algorithm)))
    if shared:
        for flag in ("beta", "tau", "eta"):
            if getattr(args, flag) is not None and not any(flag in given for _, _, given, _ in built):
                raise UsageError(f"--{flag}: none of {', '.join(names)} takes a parameter {flag}")
        for item in args.param or []:
            key = item.partition("=")[0].strip()
            if not any(key in given for _, _, given, _ in built):
                raise UsageError(f"--param {key}: none of {', '.join(names)} takes a parameter {key}")
    return built


def _run(simulate, algorithm, game, settings, **extra):
    options = {"steps": settings["steps"], "mode": settings["mode"], **extra}
    if settings["lr"] is not None:
        options["lr"] = settings["lr"]
    run = simulate(algorithm, game, **options)
    if not np.all(np.isfinite(run.log_probs[-1]) | (run.log_probs[-1] == -np.inf)):
        raise SolverDiverged(f"{algorithm.describe()} diverged (non-finite probabilities after "
                             f"{int(run.steps[-1])} steps); try a smaller --lr")
    return run


def plot_figure(args):
    """Build the figure ``args`` asks for; returns (figure, what ``--json`` reports besides the files)."""
    from .. import plotting
    from ..dynamics import simulate

    kind = args.kind
    if args.metric is not None and kind != "contour":
        raise UsageError(f"--metric applies to contour only, not to {kind}")
    if args.streamlines and kind != "field":
        raise UsageError(f"--streamlines applies to field only, not to {kind}")
    algorithm_flags = [f"--{f}" for f in ("algo", "beta", "tau", "eta", "param") if getattr(args, f)]
    game_flags = [f"--{f}" for f in ("game", "matrix", "ref", "actions") if getattr(args, f)]
    game_flags += ["--antisymmetrize"] if args.antisymmetrize else []
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be a positive integer; got {args.steps}")
    if kind == "figure9":
        if algorithm_flags or game_flags:
            raise UsageError(f"figure9 has fixed settings (IPO-MD, beta 0..1, tau {plotting.FIGURE9_TAU:g}, "
                             f"repaired rps-variant); {' '.join(algorithm_flags + game_flags)} do not apply "
                             "(only --steps and --lr do)")
        given = {name: value for name, value in (("steps", args.steps), ("lr", args.lr)) if value is not None}
        run = plotting.figure9_run(**given)  # its own defaults otherwise
        steps, lr = int(run.steps[-1]), given.get("lr", plotting.FIGURE9_LR)
        return plotting.plot_figure9(run, lr=lr), {"game": run.games[0].name, "steps": steps, "lr": lr,
                                                    "algorithms": [run.algorithm.describe()]}
    if not (args.game or args.matrix):
        raise UsageError(f"{kind} needs a game: --game NAME or --matrix FILE")
    game = game_from_args(args)
    if kind in SIMPLEX_KINDS and game.num_actions != 3:
        raise UsageError(f"{kind} draws the probability simplex of a 3-action game; {game.name!r} has "
                         f"{game.num_actions} actions (use `plot convergence` for games of any size)")
    if kind == "tau-path":
        dynamics_flags = algorithm_flags + [f"--{f}" for f in ("steps", "lr") if getattr(args, f) is not None]
        if dynamics_flags:
            raise UsageError(f"tau-path draws equilibria, not dynamics; {' '.join(dynamics_flags)} do not apply")
        return plotting.plot_tau_path(game), {"game": game.name}
    if kind == "contour":
        return _plot_contour(args, game, algorithm_flags)
    if not args.algo:
        raise UsageError(f"{kind} needs at least one --algo NAME (see `preference-games algorithms`)")
    if kind == "field" and args.steps is not None:
        raise UsageError("field is one exact step from every grid point; --steps does not apply")
    if args.steps is None:
        args.steps = PLOT_STEPS
    built = _plot_algorithms(args)
    info = {"game": game.name, "algorithms": [algorithm.describe() for _, algorithm, _, _ in built],
            "steps": args.steps, "lr": [settings["lr"] for *_, settings in built]}
    if kind == "field":
        if len(built) > 1:
            raise UsageError("field draws the vector field of one algorithm; give one --algo")
        _, algorithm, _, settings = built[0]
        field = plotting.vector_field(algorithm, game, lr=settings["lr"], mode=settings["mode"])
        del info["steps"]
        info["streamlines"] = bool(args.streamlines)
        return plotting.plot_vector_field(field, streamlines=args.streamlines), info
    if kind == "convergence":
        runs = [_run(simulate, algorithm, game, settings) for _, algorithm, _, settings in built]
        return plotting.plot_convergence(runs, average=args.average), info
    runs, labels = _runs_from_starts(built, game)
    info["starts"] = [list(start) for start in PLOT_STARTS]
    return plotting.plot_trajectories(runs, labels=labels), info


def _runs_from_starts(built, game):
    """Every algorithm of ``built`` from every start of :data:`PLOT_STARTS`, prompt 0 (other prompts start at π_ref):
    the runs (one per algorithm, one configuration per start) and one label per line."""
    from ..dynamics import simulate
    from ..models import TabularLogits

    table = np.repeat(game.ref.log_probs[None], len(PLOT_STARTS), axis=0)
    table[:, 0] = np.log(np.array(PLOT_STARTS))
    runs, labels = [], []
    for _, algorithm, _, settings in built:
        policy = TabularLogits.from_log_probs(table)
        runs.append(_run(simulate, algorithm, game, settings, policy=policy, configs=len(table)))
        labels += [f"{algorithm.describe()} from ({', '.join(f'{p:g}' for p in start)})" for start in PLOT_STARTS]
    return runs, labels


def _plot_contour(args, game, algorithm_flags):
    """``plot contour``: DualGap_τ (or KL to π*_τ) shaded over the simplex, both equilibria marked, and with --algo
    that algorithm's trajectories from :data:`PLOT_STARTS`. τ is --tau, else the algorithm's (the τ its duality gap
    is measured at), else :data:`CONTOUR_TAU`; an algorithm that takes no τ leaves --tau to the contours."""
    from .. import plotting

    metric = args.metric or "gap"
    if args.tau is not None and not (math.isfinite(args.tau) and args.tau >= 0):
        raise UsageError(f"--tau must be a finite number >= 0; got {args.tau}")
    if metric == "gap" and not game.support[0].all():
        # A policy with mass off Supp(π_ref) has DualGap = +inf (its KL to π_ref is), i.e. everywhere but on one
        # face of the triangle; plotting.plot_contours shades the whole simplex and cannot mask that. KL(π*‖π) is
        # finite off the support, so --metric kl still draws.
        outside = ", ".join(game.actions[y] for y in np.flatnonzero(~game.support[0]))
        raise UsageError(f"--ref: the duality gap is infinite wherever a policy puts mass on {outside} (zero in the "
                         "reference), which is all of the simplex but one face; use --metric kl or a reference "
                         "with full support")
    built, runs, labels = [], [], []
    if not args.algo:
        dynamics_flags = [f for f in algorithm_flags if f != "--tau"]
        dynamics_flags += [f"--{f}" for f in ("steps", "lr") if getattr(args, f) is not None]
        if dynamics_flags:
            raise UsageError(f"contour without --algo draws no dynamics; {' '.join(dynamics_flags)} do not apply "
                             "(only --tau and --metric do)")
        tau = CONTOUR_TAU if args.tau is None else args.tau
    else:
        if len(set(args.algo)) > 1:
            raise UsageError("contour draws the trajectories of one algorithm; give one --algo")
        one = argparse.Namespace(**vars(args))
        algorithms = registry()
        if args.algo[0] in algorithms.names() and "tau" not in algorithms.parameters(args.algo[0]):
            one.tau = None  # --tau is then the contours' alone
        if one.steps is None:
            one.steps = PLOT_STEPS
        built = _plot_algorithms(one)
        algorithm = built[0][1]
        if args.tau is not None:
            tau = args.tau
        elif np.size(facts(algorithm).gap_tau) == 1:
            tau = float(np.asarray(facts(algorithm).gap_tau).reshape(-1)[0])
        else:
            tau = CONTOUR_TAU
    if metric == "kl" and not tau > 0:
        raise UsageError(f"--metric kl measures KL to the regularised equilibrium, which needs tau > 0; got {tau:g} "
                         "(give --tau)")
    if built:
        runs, labels = _runs_from_starts(built, game)
    fig = plotting.plot_contours(game, tau, kind=CONTOUR_METRICS[metric], equilibria=True)
    info = {"game": game.name, "metric": metric, "tau": tau}
    if runs:
        plotting.plot_trajectories(runs, labels=labels, ax=fig.axes[0])
        info.update({"algorithms": [built[0][1].describe()], "steps": one.steps, "lr": [built[0][3]["lr"]],
                     "starts": [list(start) for start in PLOT_STARTS]})
    return fig, info


def cmd_plot(args) -> int:
    from .. import plotting

    formats = _plot_formats(args.formats)
    out = output_folder(args.out)
    fig, info = plot_figure(args)
    paths = plotting.save(fig, out / args.kind, formats)
    if args.json:
        print(json.dumps({"files": [str(p) for p in paths], "kind": args.kind, **info}))
    else:
        for path in paths:
            print(path)
    return 0


def add_parser(commands) -> None:
    plot = commands.add_parser(
        "plot",
        help="draw a figure of the exact dynamics (PNG and SVG)",
        description="Draw a figure and write it as DIR/KIND.png and DIR/KIND.svg (byte-reproducible: no dates or "
        "versions in the files). figure9: IPO-MD Figure 9 (fixed settings); dynamics: trajectories of each --algo "
        "from three starts; field: the exact one-step vector field of one --algo (quiver, or --streamlines); "
        "contour: the duality gap at tau (or --metric kl: KL to the regularised equilibrium) shaded over the simplex, "
        "the equilibria marked, and with one --algo its trajectories from the three starts; tau-path: the path of "
        "regularised equilibria; these five need a 3-action game. convergence: duality gap and KL to the fixed point "
        "against iterations for each --algo, on a game of any size.",
    )
    plot.add_argument("kind", choices=PLOT_KINDS, metavar="KIND", help=f"one of: {', '.join(PLOT_KINDS)}")
    plot.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if needed)")
    plot.add_argument("--algo", action="append", metavar="NAME", help="a registered algorithm (repeatable for "
                      "dynamics and convergence)")
    add_algorithm_arguments(plot, to="to the algorithms", tau_also="; contour: also the tau of the shading, default "
                            f"the algorithm's or {CONTOUR_TAU:g}")
    add_game_arguments(plot, seed_help="seed of the random built-in games (default 0)", required=False)
    plot.add_argument("--steps", type=int, help=f"steps of the dynamics (default {PLOT_STEPS}; figure9: 400)")
    plot.add_argument("--lr", type=float, help=f"learning rate of the gradient modes (default {DEFAULT_LR:g}; "
                      f"figure9: {FIGURE9_LR:g})")
    plot.add_argument("--average", action="store_true", help="convergence: also the gap of the running average of "
                      "the iterates (last iterate against average)")
    plot.add_argument("--metric", choices=tuple(CONTOUR_METRICS), help="contour: shade the duality gap at tau (gap, "
                      "default) or KL(pi*_tau || pi) from the regularised equilibrium (kl)")
    plot.add_argument("--streamlines", action="store_true", help="field: streamlines (matplotlib streamplot) of the "
                      "linear interpolation of the exact field at the grid points, instead of arrows")
    plot.add_argument("--formats", default="png,svg", metavar="LIST", help="comma-separated: png, svg "
                      "(default png,svg)")
    plot.add_argument("--json", action="store_true", help="print one JSON object {files: [...], kind, game, ...}")
    plot.set_defaults(run=cmd_plot)
