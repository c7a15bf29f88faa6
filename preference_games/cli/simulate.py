"""``preference-games simulate``: run one algorithm on one game. With the default ``--policy table`` the policy is
a table on a table game, run exactly, by its closed-form map or from sampled pairs, and compared with the
algorithm's fixed point; with ``--policy autoregressive`` it is a network trained on a sequence game
(:mod:`.simulate_sequences`)."""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from ..policies import policy_lists
from . import SolverDiverged, UsageError
from .common import (add_algorithm_arguments, add_game_arguments, algorithm_params, describe, emit,
                     game_from_args, jsonable, load_array, make_algorithm, print_lines, registry, tau_text)

#: ``simulate``'s default learning rate on a table, also :func:`~preference_games.dynamics.simulate`'s. In the
#: IPO-family losses (h − 1/(2τ))² the gradient in the logits has a restoring part of size 1 and a rotating part
#: (P − ½)π/τ (the label target), so the stable step shrinks once τ is small — like τ² on rps-variant (measured: the
#: largest stable step of online IPO is 0.276 at τ = 0.1 and 0.0034 at τ = 0.01; docs/algorithms.md). At 0.1, online
#: IPO and IPO-MD(0.5) at τ = 0.1 reach stationarity (no probability moving by more than 1e-12 over one period of
#: the schedule, which for these unanchored algorithms is one step) on the repaired rps-variant in about 250 and 180
#: exact steps, and online IPO at τ = 1 on rps-variant, random and bradley-terry in 150-550; 0.5 makes online IPO at
#: τ = 0.1 oscillate, and τ = 0.01 needs about 0.001.
DEFAULT_LR = 0.1
DEFAULT_BATCH = 64
#: Progress bars are drawn (on stderr, and only when stderr is a terminal) for table runs that may take more steps.
PROGRESS_MIN_STEPS = 2000
MODES = ("exact", "closed-form", "sampled")  # preference_games.dynamics.MODES (not imported: torch loads lazily)
LABELS = ("bernoulli", "soft")  # preference_games.samplers.LABELS
POLICIES = ("table", "autoregressive")
#: ``simulate --mode closed-form``'s step cap without --steps or --max-steps (the gradient modes keep
#: :data:`preference_games.dynamics.MAX_STEPS`, 100000). Every closed-form map with a constant step size converges
#: geometrically: INPO and Nash-MD at their defaults are stationary within 500 iterations on rps-variant, random (6
#: and 10 actions), bradley-terry and condorcet (measured). A map still moving after 10000 converges only
#: polynomially or not at all, and more iterations are better asked for than spent by default: INPO with
#: schedule=theorem-4 and Nash-MD with schedule=decreasing take a step τ/η_t = 2/(t + 3), so each iteration moves
#: the policy by only about 4/t of its distance to the fixed point (measured), and a period (100 iterations at the
#: default inner_steps) moving less than 1e-12 comes after about 2·10⁵ iterations (at 10⁴ the random 6-action game
#: is within 2e-7 of it, duality gap 1e-13). SPPO's last iterate keeps cycling on intransitive games (its output is
#: the average of the iterates). 10000 iterations take about 2 s on a 6-action game.
CLOSED_FORM_MAX_STEPS = 10_000
STOPPED = {
    "steps": "ran the requested number of steps",
    "stationary": "stationary: no probability moved by more than 1e-12 over one period of the algorithm's schedule",
}
#: Why a run may reach its step cap, and what to do, by mode: only the gradient modes have a step size to lower.
STEP_CAP = {
    "exact": "reached the step cap before becoming stationary (raise --max-steps; lower --lr if it oscillates)",
    "sampled": "reached the step cap before becoming stationary (sampled steps move with the noise of every batch, "
    "so a sampled run is rarely stationary: give --steps)",
    "closed-form": "reached the step cap before becoming stationary (a decreasing step size, as in schedule="
    "theorem-4 or decreasing, converges slowly and a cycling map never stops; raise --max-steps or give --steps)",
}
#: Options of the autoregressive trainer alone, by their argparse names.
AUTOREGRESSIVE_ONLY = ("eval_every", "optimizer")


def add_parser(commands) -> None:
    sim = commands.add_parser(
        "simulate",
        help="run one algorithm on one game and compare where it ends with its fixed point",
        description="Run an alignment algorithm on a preference game: exactly (population loss), by its closed-form "
        "map, or from sampled pairs. Without --steps it runs until no probability moves by more than 1e-12 over one "
        "period of the algorithm's schedule (one step, or one outer iteration of an anchored algorithm), or until "
        "--max-steps. It reports the final policy, its duality gap at the algorithm's tau, KL to "
        "pi_ref and the distance to the algorithm's stated fixed point. With --policy autoregressive it trains a "
        "small autoregressive network on a sequence game (`preference-games games` lists them) from sampled pairs "
        "and reports its exact duality gap every --eval-every steps. Parameters: see `preference-games algorithms`.",
    )
    sim.add_argument("--algo", required=True, metavar="NAME", help="a registered algorithm (see `preference-games "
                     "algorithms`)")
    add_algorithm_arguments(sim, to="algorithms")
    add_game_arguments(sim, seed_help="seed of the pair sampler and of the random built-in games; with --policy "
                       "autoregressive also of the network's initialisation (default 0)",
                       game_help="; with --policy autoregressive a sequence game (see `preference-games games`)")
    sim.add_argument("--policy", choices=POLICIES, default="table", help="table: one logit per prompt and action "
                     "(default); autoregressive: a network generating token strings, on a sequence game, sampled "
                     "mode only")
    sim.add_argument("--data", metavar="FILE", help="data policy mu [Y] or [X, Y] for algorithms that use one "
                     "(default pi_ref)")
    sim.add_argument("--steps", type=int, help="run exactly this many steps (default: until stationary; with "
                     "--policy autoregressive, the sequence trainer's default)")
    sim.add_argument("--max-steps", type=int, help="without --steps: stop here if not yet stationary "
                     f"(default 100000; {CLOSED_FORM_MAX_STEPS} with --mode closed-form)")
    sim.add_argument("--lr", type=float, help=f"learning rate of the gradient modes (default {DEFAULT_LR:g}; with "
                     "--policy autoregressive, the sequence trainer's default)")
    sim.add_argument("--mode", choices=MODES, help="exact: population loss; closed-form: the paper's exact map; "
                     "sampled: --batch pairs per step (default: exact, or closed-form for map-only algorithms; "
                     "sampled with --policy autoregressive)")
    sim.add_argument("--sampled", action="store_true", help="shorthand for --mode sampled")
    sim.add_argument("--batch", type=int, help=f"sampled mode: pairs per step (default {DEFAULT_BATCH}; with --policy "
                     "autoregressive, the sequence trainer's default)")
    sim.add_argument("--labels", choices=LABELS, help="sampled mode: Bernoulli(p) labels or soft labels p (default "
                     "bernoulli; with --policy autoregressive, the sequence trainer's default)")
    sim.add_argument("--eval-every", type=int, metavar="K", help="--policy autoregressive: measure the exact duality "
                     "gap every K steps (default: the sequence trainer's)")
    sim.add_argument("--optimizer", metavar="NAME", help="--policy autoregressive: adam or sgd (default: the "
                     "sequence trainer's)")
    sim.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help=f"progress bar on stderr (default: when stderr is a terminal and, for a table, the run may "
                     f"exceed {PROGRESS_MIN_STEPS} steps)")
    sim.add_argument("--json", action="store_true", help="print one JSON object (keys: final_policy, duality_gap, "
                     "fixed_point, ...; with --policy autoregressive: initial_duality_gap, final_duality_gap, "
                     "duality_gap as [step, gap] pairs, ...)")
    sim.set_defaults(run=cmd_simulate)


def cmd_simulate(args) -> int:
    if args.sampled and args.mode not in (None, "sampled"):
        raise UsageError(f"--sampled means --mode sampled; it contradicts --mode {args.mode}")
    if args.policy == "autoregressive":
        from .simulate_sequences import print_sequence_run, sequence_report

        return emit(sequence_report(args), args, print_sequence_run)
    return emit(simulate_report(args), args, print_simulate)


# ================================================================================================ tables
def run_settings(args, algorithm) -> dict:
    """Mode, step counts, learning rate and sampling settings of a table run: the flags that apply to the mode,
    defaults for those not given. Their values are checked by :func:`~preference_games.dynamics.simulate`."""
    mode = "sampled" if args.sampled else args.mode or "exact"
    if args.max_steps is not None and args.steps is not None:
        raise UsageError("--max-steps caps a run without --steps; give one of them")
    if mode == "closed-form" and args.lr is not None:
        raise UsageError("--lr does not apply to --mode closed-form (the exact map has no step size)")
    if mode != "sampled":
        for flag, value in (("--batch", args.batch), ("--labels", args.labels)):
            if value is not None:
                raise UsageError(f"{flag} applies to --mode sampled (or --sampled) only")
    if args.data and not algorithm.uses_data:
        raise UsageError(f"{args.algo} does not use a data policy; --data applies to: {', '.join(data_users())}")
    return {
        "mode": mode,
        "lr": None if mode == "closed-form" else DEFAULT_LR if args.lr is None else args.lr,
        "steps": args.steps,
        "max_steps": CLOSED_FORM_MAX_STEPS if args.max_steps is None and mode == "closed-form" else args.max_steps,
        "batch": (DEFAULT_BATCH if args.batch is None else args.batch) if mode == "sampled" else None,
        "labels": (args.labels or "bernoulli") if mode == "sampled" else None,
    }


def data_users() -> list[str]:
    """The registered algorithms that use a data policy (those built with their defaults)."""
    algorithms = registry()
    users = []
    for name in algorithms.names():
        try:
            if algorithms.make(name).uses_data:
                users.append(name)
        except (ValueError, TypeError):
            pass
    return users


def check_table_game(args) -> None:
    """Refuse the autoregressive trainer's options and sequence games on a table policy, naming the fix."""
    from .games import sequence_games

    given = [f"--{name.replace('_', '-')}" for name in AUTOREGRESSIVE_ONLY if getattr(args, name) is not None]
    if given:
        raise UsageError(f"{' '.join(given)} apply to --policy autoregressive only")
    if args.game in sequence_games():
        raise UsageError(f"{args.game} is a sequence game: add --policy autoregressive (a table policy runs on the "
                         "table games)")


def simulate_report(args) -> dict:
    """Run ``simulate`` as the arguments ask and collect what it prints; every number is the trajectory's own."""
    check_table_game(args)
    given = algorithm_params(args)
    algorithm = make_algorithm(args.algo, given)
    settings = run_settings(args, algorithm)
    game = game_from_args(args)
    data = load_array(args.data, "data policy") if args.data else None
    if data is not None:
        try:
            game.policy(data)  # the shape and support checks simulate() makes, named for this file
        except ValueError as error:
            raise UsageError(f"data policy file {args.data}: {error}") from None

    from ..dynamics import MAX_STEPS, simulate

    total = settings["steps"] if settings["steps"] is not None else settings["max_steps"] or MAX_STEPS
    progress = args.progress if args.progress is not None else sys.stderr.isatty() and total > PROGRESS_MIN_STEPS
    options = {"steps": settings["steps"], "mode": settings["mode"], "seed": args.seed, "data": data,
               "progress": bool(progress)}
    if settings["max_steps"] is not None:
        options["max_steps"] = settings["max_steps"]
    if settings["lr"] is not None:
        options["lr"] = settings["lr"]
    if settings["mode"] == "sampled":
        options.update(batch=settings["batch"], labels=settings["labels"])
    run = simulate(algorithm, game, **options)

    final = run.final[0]  # [X, Y]: the CLI runs one configuration
    if not np.all(np.isfinite(final)):
        raise SolverDiverged(f"the run diverged (non-finite probabilities after {int(run.steps[-1])} steps); "
                             "try a smaller --lr")
    fixed = np.exp(run.fixed_point[0]) if run.fixed_point is not None else None
    params = {**registry().parameters(args.algo), **given}
    loss = None if run.loss is None else float(run.loss[-1, 0])
    report = {
        "algorithm": args.algo,
        "name": algorithm.name,
        "params": {k: jsonable(v) for k, v in params.items()},
        "description": describe(args.algo, params),
        "paper": algorithm.paper,
        "update": algorithm.update,
        "mode": settings["mode"],
        "lr": settings["lr"],
        "batch": settings["batch"],
        "labels": settings["labels"],
        "seed": args.seed,
        "game": game.name,
        "actions": list(game.actions),
        "num_prompts": game.num_prompts,
        "steps": int(run.steps[-1]),
        "stopped": run.stopped,
        "final_policy": policy_lists(final),
        "tau": jsonable(run.facts.gap_tau),
        "duality_gap": float(run.duality_gap[-1, 0]),
        "unregularized_gap": float(run.unregularized_gap[-1, 0]),
        "kl_to_ref": float(run.kl_to_ref[-1, 0]),
        "kl_to_fixed_point": float(run.kl_to_fixed_point[-1, 0]) if run.kl_to_fixed_point is not None else None,
        "fixed_point": policy_lists(fixed) if fixed is not None else None,
        "fixed_point_kind": run.facts.fixed_point_kind,
        "max_abs_diff_to_fixed_point": float(np.abs(final - fixed).max()) if fixed is not None else None,
        "loss": loss if loss is not None and math.isfinite(loss) else None,
        "ref": policy_lists(game.ref.probs),
    }
    if run.facts.average_iterate:  # the algorithm's output is the uniform average of its iterates (SPPO)
        average = run.average()[0]
        report["average_policy"] = policy_lists(average)
        report["average_max_abs_diff_to_fixed_point"] = (
            float(np.abs(average - fixed).max()) if fixed is not None else None
        )
    return report


def print_simulate(report: dict) -> None:
    prompts = report["num_prompts"]
    print(f"{report['description']} on {report['game']}: {len(report['actions'])} actions, "
          f"{prompts} prompt{'s' * (prompts > 1)}")
    print(f"paper:     {report['paper']}")
    how = {"exact": "exact (population loss, exhaustive pairs)", "closed-form": "closed-form (the paper's exact map)",
           "sampled": f"sampled ({report['batch']} pairs per step, {report['labels']} labels, seed {report['seed']})"}
    mode = how[report["mode"]]
    if report["lr"] is not None:
        mode += f"; {report['update']} steps, lr = {report['lr']:g}"
    print(f"mode:      {mode}")
    stopped = STEP_CAP[report["mode"]] if report["stopped"] == "step cap" else STOPPED[report["stopped"]]
    print(f"steps:     {report['steps']}; {stopped}")
    fixed = report["fixed_point"]
    columns = [("final pi", report["final_policy"])]
    if "average_policy" in report:
        columns.append(("average pi", report["average_policy"]))
    if fixed is not None:
        columns.append(("fixed point", fixed))
    columns.append(("pi_ref", report["ref"]))
    width = max(8, *(len(a) for a in report["actions"]))
    for x in range(prompts):
        if prompts > 1:
            print(f"prompt {x}")
        print(f"  {'action':<{width}}" + "".join(f"  {title:>12}" for title, _ in columns))
        for y, action in enumerate(report["actions"]):
            row = [(values if prompts == 1 else values[x])[y] for _, values in columns]
            print(f"  {action:<{width}}" + "".join(f"  {v:12.8f}" for v in row))
    lines = [
        (f"duality gap at tau = {tau_text(report['tau'])}", f"{report['duality_gap']:.3e}   (at the algorithm's tau)"),
        ("unregularised gap (tau = 0)", f"{report['unregularized_gap']:.3e}"),
        ("KL(pi || pi_ref)", f"{report['kl_to_ref']:.6g}"),
        ("fixed point", report["fixed_point_kind"]),
    ]
    if fixed is not None:
        lines += [
            ("max |pi - fixed point|", f"{report['max_abs_diff_to_fixed_point']:.3e}"),
            ("KL(pi || fixed point)", f"{report['kl_to_fixed_point']:.3e}"),
        ]
        if "average_policy" in report:
            lines.append(("max |average pi - fixed point|", f"{report['average_max_abs_diff_to_fixed_point']:.3e}"))
    else:
        lines.append(("", "none in closed form for this algorithm and game"))
    if report["loss"] is not None:
        lines.append(("final loss", f"{report['loss']:.6g}"))
    print_lines(lines)
