"""The ``preference-games`` command line (also ``python -m preference_games``).

    preference-games demo                               solve the built-in games and print a summary
    preference-games games                              list the built-in games
    preference-games solve --game rps-variant --antisymmetrize --tau 0.1 [--json]
    preference-games solve --matrix P.csv [--ref ref.csv] --tau 0 [--json]
    preference-games algorithms [--json]                list the registered alignment algorithms
    preference-games simulate --algo ipo-md --beta 0.5 --tau 0.1 --game rps-variant --antisymmetrize [--json]
    preference-games plot figure9|dynamics|field|contour|convergence|tau-path --out DIR [--algo NAME ...] [--game ...]
    preference-games verify [--only NAME ...] [--games N] [--seed S] [--quick] [--list] [--json]

Every failure caused by the input ends with a one-line message on stderr and exit status 2; no traceback.
``verify`` exits with status 1 when a check itself raised (a bug, reported as the verdict "error"), never because a
paper's claim failed: that is a finding, printed with its counterexample.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from . import __version__
from .equilibria import SELECTIONS, SolverError, duality_gap, exploitability, nash_lp, regularized_nash
from .games import PreferenceGame, by_name, check_seed, named_games
from .policies import policy_lists, real_array

EXIT_BAD_INPUT = 2
EXIT_SOLVER_FAILED = 3


class UsageError(Exception):
    """Bad input found after argument parsing (a file that does not load, say)."""


class SolverDiverged(Exception):
    """A simulation whose policy stopped being a probability distribution."""


class ArgumentsError(Exception):
    """Arguments argparse rejects; carries the whole one-line message (argparse would print usage and exit)."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a rejected command line raises :class:`ArgumentsError` instead of printing the usage
    block and exiting: :func:`main` turns it into one line on stderr and status 2, like every other bad input."""

    def error(self, message):
        raise ArgumentsError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# ================================================================================================= input
def _seed(text: str) -> int:
    """argparse type of every ``--seed``: the library's check, reported by argparse with the option's name."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    try:
        return check_seed(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _check_name(text: str) -> str:
    """argparse type of ``verify --only``: a name or a prefix of one. An empty one is a prefix of every name, so it
    would silently run every check (an unset shell variable, say), which is what --only is there to avoid."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name would select every check; give a check name or a prefix "
                                          "such as inpo/ (--list shows the names)")
    return text


def load_array(path: str, what: str, *, matrix: bool = False) -> np.ndarray:
    """Load a float array from .npy, .csv or .json (a nested list of numbers).

    A .csv file has no way to tell a [1] vector from a [1, 1] matrix, so ``matrix=True`` reads it with at least two
    dimensions (a one-action game is then the same from every format) and a vector file (reference or data policy)
    with at least one. What the values may be (real, finite, of the right shape) is checked by the library, which
    refuses complex numbers that numpy would truncate with only a warning.
    """
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{what} file not found: {path}")
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".csv", ".json"):
        raise UsageError(f"{what} file must end in .npy, .csv or .json: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # loadtxt only warns about an empty file: make that an error too
            if suffix == ".npy":
                array = np.load(file, allow_pickle=False)
            elif suffix == ".csv":
                array = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2 if matrix else 1)
            else:
                array = json.loads(file.read_text())
    except RecursionError:  # json's decoder recurses once per nesting level
        raise UsageError(f"cannot read {what} file {path}: nested too deeply for an array") from None
    except (ValueError, TypeError, OSError, EOFError, UserWarning) as error:  # EOFError: np.load of an empty file
        raise UsageError(f"cannot read {what} file {path}: {str(error).splitlines()[0]}") from None
    return real_array(array, f"{what} file {path}")


def game_from_args(args) -> PreferenceGame:
    ref = load_array(args.ref, "reference policy") if args.ref else None
    if args.matrix:
        if args.actions is not None:
            raise UsageError("--actions applies to built-in games, not to --matrix")
        P = load_array(args.matrix, "matrix", matrix=True)
        return PreferenceGame(P, ref, antisymmetrize=args.antisymmetrize, name=Path(args.matrix).name)
    game = by_name(args.game, actions=args.actions, seed=args.seed, antisymmetrize=args.antisymmetrize)
    return game.with_ref(ref) if ref is not None else game


# ================================================================================================ output
def solve_report(game: PreferenceGame, tau: float, selection: str) -> dict:
    """Solve one game and collect what ``solve`` prints; every number is measured on the returned policy."""
    if tau > 0:
        eq = regularized_nash(game, tau)
        extra = {"newton_steps": eq.iterations, "products_with_P": eq.matvecs}
    else:
        eq = nash_lp(game, selection=selection)
        extra = {"value": policy_lists(eq.value[None]), "unique": [bool(u) for u in eq.unique], "selection": selection}
    policy = eq.policy
    return {
        "game": game.name,
        "num_actions": game.num_actions,
        "num_prompts": game.num_prompts,
        "actions": list(game.actions),
        "tau": tau,
        "policy": policy_lists(policy.probs),
        "duality_gap": eq.duality_gap,
        "unregularized_gap": duality_gap(game, policy, 0.0),
        "exploitability": exploitability(game, policy),
        "kl_to_ref": game.expected(policy.kl(game.ref)),
        "ref": policy_lists(game.ref.probs),
        **extra,
    }


def print_solve(report: dict) -> None:
    tau = report["tau"]
    kind = f"regularised equilibrium at tau = {tau:g}" if tau > 0 else "unregularised equilibrium (tau = 0, LP)"
    prompts = report["num_prompts"]
    print(f"{report['game']}: {report['num_actions']} actions, {prompts} prompt{'s' * (prompts > 1)}; {kind}")
    policies = [report["policy"]] if prompts == 1 else report["policy"]
    refs = [report["ref"]] if prompts == 1 else report["ref"]
    width = max(8, *(len(a) for a in report["actions"]))
    for x, (pi, ref) in enumerate(zip(policies, refs)):
        if prompts > 1:
            print(f"prompt {x}")
        print(f"  {'action':<{width}}  {'pi*':>12}  {'pi_ref':>10}")
        for action, p, r in zip(report["actions"], pi, ref):
            print(f"  {action:<{width}}  {p:12.8f}  {r:10.6f}")
    print(f"duality gap at tau = {tau:g}:   {report['duality_gap']:.3e}   (certificate of the policy above)")
    if tau > 0:
        print(f"unregularised gap (tau = 0):  {report['unregularized_gap']:.3e}")
        print(f"KL(pi* || pi_ref):            {report['kl_to_ref']:.6g}")
        print(f"Newton steps: {report['newton_steps']}, products with P: {report['products_with_P']}")
    else:
        unique = report["unique"]
        if all(unique):
            print("the equilibrium is unique")
        else:
            print(
                f"the equilibrium set is not a single point (prompts {[x for x, u in enumerate(unique) if not u]}); "
                f"selection: {report['selection']}"
            )
        print(f"KL(pi* || pi_ref):            {report['kl_to_ref']:.6g}")


# ================================================================================================ commands
def cmd_solve(args) -> int:
    if not math.isfinite(args.tau) or args.tau < 0:
        raise UsageError(f"--tau must be a finite number >= 0; got {args.tau}")
    report = solve_report(game_from_args(args), args.tau, args.selection)
    if args.json:
        print(json.dumps(report))
    else:
        print_solve(report)
    return 0


def cmd_games(args) -> int:
    games = named_games()
    if args.json:
        print(json.dumps(games))
    else:
        width = max(map(len, games))
        for name, description in games.items():
            print(f"{name:<{width}}  {description}")
    return 0


#: Where ``demo`` writes its report unless told otherwise (relative to the working directory).
DEMO_OUT = "preference-games-report"


def output_folder(out: str) -> Path:
    """``--out`` checked before any work is done (by the library's check, which creates nothing)."""
    from .report import output_folder as check

    try:
        return check(out)
    except ValueError as error:
        raise UsageError(f"--out: {error}") from None


def cmd_demo(args) -> int:
    from dataclasses import asdict

    from .report import DEMO_TAU, VERIFY_GAMES, build_report

    report = build_report(output_folder(args.out or DEMO_OUT))
    if args.json:
        print(json.dumps({"report": str(report.page), "games": [asdict(row) for row in report.games],
                          "algorithms": [asdict(row) for row in report.algorithms],
                          "theorems": report.theorems}))  # fmt: skip
        return 0
    print(f"preference-games {__version__}: exact equilibria of the built-in preference games\n")
    header = (
        f"{'game':<14} {'n':>3}  {'gap at tau=' + str(DEMO_TAU):>14} {'KL(pi*|ref)':>12}  {'LP gap':>9} "
        f"{'support':>7} {'unique':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in report.games:
        print(
            f"{row.game:<14} {row.actions:>3}  {row.regularised_gap:>14.1e} {row.kl_to_ref:>12.4g}  "
            f"{row.lp_gap:>9.1e} {row.lp_support:>7} {'yes' if row.lp_unique else 'no':>6}"
        )
    compared = [row for row in report.algorithms if row.max_abs_diff_to_fixed_point is not None]
    at_fixed_point = sum(row.max_abs_diff_to_fixed_point <= 1e-6 for row in compared)
    print(
        "\nrps-variant is the IPO-MD Appendix F matrix repaired to (P - P^T + 1)/2 (the printed one is not "
        "constant-sum).\nEvery gap is the certificate of the returned policy."
        f"\n\n{len(report.algorithms)} algorithms ran on rps-variant; {at_fixed_point} of the {len(compared)} with a "
        "closed-form fixed point are within 1e-6 of it (the others are slower or cycle: see the report)."
    )
    verdicts = Counter(t["verdict"] for t in report.theorems)
    print(f"\nTheorem checks ({len(report.theorems)} results of the papers, on the named and {VERIFY_GAMES} random "
          "games; `preference-games verify` uses 200): "
          + ", ".join(f"{n} {verdict}" for verdict, n in verdicts.items()))
    for t in report.theorems:
        if t["verdict"] != "holds":
            print(f"  {t['verdict']:<22} {t['name']} ({t['paper']}, {t['location']})")
    print(f"\nReport with every algorithm, Figure 9, a vector field, convergence plots and the theorem checks: "
          f"{report.page}")
    return 0


# ============================================================================================ algorithms
#: ``simulate``'s default learning rate, also :func:`~preference_games.dynamics.simulate`'s. In the IPO-family
#: losses (h − 1/(2τ))² the gradient in the logits has a restoring part of size 1 and a rotating part (P − ½)π/τ
#: (the label target), so the stable step shrinks once τ is small — like τ² on rps-variant (measured: the largest
#: stable step of online IPO is 0.276 at τ = 0.1 and 0.0034 at τ = 0.01; docs/algorithms.md). At 0.1, online IPO and
#: IPO-MD(0.5) at τ = 0.1 reach stationarity (no probability moving by more than 1e-12 over one period of the
#: schedule, which for these unanchored algorithms is one step) on the repaired rps-variant
#: in about 250 and 180 exact steps, and online IPO at τ = 1 on rps-variant, random and bradley-terry in 150-550; 0.5
#: makes online IPO at τ = 0.1 oscillate, and τ = 0.01 needs about 0.001.
DEFAULT_LR = 0.1
DEFAULT_BATCH = 64
#: Progress bars are drawn (on stderr, and only when stderr is a terminal) for runs that may take more steps.
PROGRESS_MIN_STEPS = 2000
MODES = ("exact", "closed-form", "sampled")  # preference_games.dynamics.MODES (not imported: torch loads lazily)
LABELS = ("bernoulli", "soft")  # preference_games.samplers.LABELS
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


def _registry():
    from . import algorithms  # imports torch: only the commands that need it pay for it

    return algorithms


def _facts(algorithm):
    from .tabular import facts  # imports torch, like the registry

    return facts(algorithm)


def _jsonable(value):
    """A parameter value as JSON: numbers, strings and booleans as they are, arrays as lists, anything else as text."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, np.ndarray):
        return value.tolist()
    return "required" if value is _EMPTY else str(value)


_EMPTY = inspect.Parameter.empty


def _show(value) -> str:
    """A parameter value for text output."""
    if value is _EMPTY:
        return "(required)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _describe(name: str, params: dict) -> str:
    return f"{name}({', '.join(f'{k}={_show(v)}' for k, v in params.items())})"


def _modes(algorithm) -> list[str]:
    return ["exact", "sampled"] + (["closed-form"] if _facts(algorithm).closed_form is not None else [])


def algorithm_report(name: str) -> dict:
    """What ``algorithms`` prints about one registered algorithm, read from the algorithm built with its defaults."""
    registry = _registry()
    defaults = registry.parameters(name)
    entry = {"params": {k: _jsonable(v) for k, v in defaults.items()}}
    try:
        algorithm = registry.make(name)
    except (ValueError, TypeError) as error:  # a required parameter: describe what the signature says
        return {**entry, "paper": None, "error": f"cannot build with default parameters: {error}"}
    facts = _facts(algorithm)
    return {
        **entry,
        "paper": algorithm.paper,
        "fixed_point_kind": facts.fixed_point_kind,
        "closed_form": facts.closed_form is not None,
        "update": algorithm.update,
        "modes": _modes(algorithm),
        "uses_data": bool(algorithm.uses_data),
        "average_iterate": bool(facts.average_iterate),
        "gap_tau": _jsonable(facts.gap_tau),
    }


def cmd_algorithms(args) -> int:
    reports = {name: algorithm_report(name) for name in _registry().names()}
    if args.json:
        print(json.dumps(reports))
        return 0
    for name, report in reports.items():
        params = ", ".join(f"{k}={_show(v)}" for k, v in report["params"].items()) or "no parameters"
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


# ============================================================================================== simulate
def _parse_value(text: str, default):
    """A ``--param`` value: ``none`` for None (e.g. inner_steps=none: run each inner argmin to convergence), an
    integer, else a float, else the text; guided by the default's type where it helps."""
    if text.strip().lower() == "none" and not isinstance(default, str):
        return None
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise UsageError(f"expected true or false; got {text!r}")
    if isinstance(default, str):
        return text
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return float(value) if isinstance(default, float) else value
    return text


def algorithm_params(args) -> dict:
    """The parameters given on the command line (--beta/--tau/--eta and every --param KEY=VALUE), checked against
    what the algorithm takes; values are parsed, not yet validated (the algorithm's factory does that)."""
    registry = _registry()
    if args.algo not in registry.names():
        raise UsageError(f"unknown algorithm {args.algo!r}; choose one of: {', '.join(registry.names())}")
    accepted = registry.parameters(args.algo)
    takes = ", ".join(accepted) or "no parameters"
    given = {}
    for flag in ("beta", "tau", "eta"):
        value = getattr(args, flag)
        if value is not None:
            if flag not in accepted:
                raise UsageError(f"--{flag}: {args.algo} takes no parameter {flag} (it takes: {takes})")
            given[flag] = value
    for item in args.param or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE; got {item!r}")
        if key not in accepted:
            raise UsageError(f"--param {key}: {args.algo} takes no parameter {key} (it takes: {takes})")
        if key in given:
            raise UsageError(f"parameter {key} is given twice")
        try:
            given[key] = _parse_value(text, accepted[key])
        except UsageError as error:
            raise UsageError(f"--param {key}: {error}") from None
    return given


def _run_settings(args, algorithm) -> dict:
    """Mode, step counts, learning rate and sampling settings, checked before anything runs."""
    if args.sampled and args.mode not in (None, "sampled"):
        raise UsageError(f"--sampled means --mode sampled; it contradicts --mode {args.mode}")
    mode = "sampled" if args.sampled else args.mode
    if mode is None:
        mode = "exact"
    if mode == "closed-form" and _facts(algorithm).closed_form is None:
        raise UsageError(f"{args.algo} has no closed-form map; use --mode exact or --mode sampled")
    if args.steps is not None and args.steps < 0:
        raise UsageError(f"--steps must be a non-negative integer; got {args.steps}")
    if args.max_steps is not None:
        if args.steps is not None:
            raise UsageError("--max-steps caps a run without --steps; give one of them")
        if args.max_steps < 1:
            raise UsageError(f"--max-steps must be a positive integer; got {args.max_steps}")
    if mode == "closed-form":
        if args.lr is not None:
            raise UsageError("--lr does not apply to --mode closed-form (the exact map has no step size)")
        lr = None
    else:
        lr = DEFAULT_LR if args.lr is None else args.lr
        if not (math.isfinite(lr) and lr > 0):
            raise UsageError(f"--lr must be a finite number > 0; got {lr}")
    if mode != "sampled":
        for flag, value in (("--batch", args.batch), ("--labels", args.labels)):
            if value is not None:
                raise UsageError(f"{flag} applies to --mode sampled (or --sampled) only")
    batch = DEFAULT_BATCH if args.batch is None else args.batch
    if batch < 1:
        raise UsageError(f"--batch must be a positive integer; got {batch}")
    if args.data and not algorithm.uses_data:
        raise UsageError(f"{args.algo} does not use a data policy; --data applies to: {', '.join(_data_users())}")
    return {
        "mode": mode,
        "lr": lr,
        "steps": args.steps,
        "max_steps": CLOSED_FORM_MAX_STEPS if args.max_steps is None and mode == "closed-form" else args.max_steps,
        "batch": batch if mode == "sampled" else None,
        "labels": (args.labels or "bernoulli") if mode == "sampled" else None,
    }


def _data_users() -> list[str]:
    registry = _registry()
    users = []
    for name in registry.names():
        try:
            if registry.make(name).uses_data:
                users.append(name)
        except (ValueError, TypeError):
            pass
    return users


def simulate_report(args) -> dict:
    """Run ``simulate`` as the arguments ask and collect what it prints; every number is the trajectory's own."""
    registry = _registry()
    given = algorithm_params(args)
    try:
        algorithm = registry.make(args.algo, **given)
    except TypeError as error:  # e.g. a required parameter nobody gave
        raise UsageError(f"{args.algo}: {error}") from None
    settings = _run_settings(args, algorithm)
    game = game_from_args(args)
    data = load_array(args.data, "data policy") if args.data else None
    if data is not None:
        try:
            game.policy(data)  # the shape and support checks simulate() makes, named for this file
        except ValueError as error:
            raise UsageError(f"data policy file {args.data}: {error}") from None

    from .dynamics import MAX_STEPS, simulate

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
    params = {**registry.parameters(args.algo), **given}
    loss = None if run.loss is None else float(run.loss[-1, 0])
    report = {
        "algorithm": args.algo,
        "name": algorithm.name,
        "params": {k: _jsonable(v) for k, v in params.items()},
        "description": _describe(args.algo, params),
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
        "tau": _jsonable(run.facts.gap_tau),
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
    tau = report["tau"]
    tau_text = f"{tau:g}" if isinstance(tau, float) else str(tau)
    lines = [
        (f"duality gap at tau = {tau_text}", f"{report['duality_gap']:.3e}   (at the algorithm's tau)"),
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
    width = max(len(label) for label, _ in lines) + 1
    for label, value in lines:
        print(f"{label + ':' if label else '':<{width}}  {value}")


def cmd_simulate(args) -> int:
    report = simulate_report(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_simulate(report)
    return 0


# ================================================================================================== plot
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
    ``registry.make`` and :func:`_run_settings` as ``simulate`` builds its one. With several algorithms, ``--beta``,
    ``--tau``, ``--eta`` and ``--param`` go to those that take them (each must be taken by at least one), and
    ``--lr`` to those that take gradient steps; with one algorithm the rules are exactly ``simulate``'s."""
    registry = _registry()
    names = list(dict.fromkeys(args.algo))
    shared = len(names) > 1
    built = []
    for name in names:
        one = argparse.Namespace(**vars(args))
        one.algo = name
        one.sampled, one.mode, one.batch, one.labels, one.max_steps, one.data = False, None, None, None, None, None
        if shared and name in registry.names():
            accepted = registry.parameters(name)
            for flag in ("beta", "tau", "eta"):
                if flag not in accepted:
                    setattr(one, flag, None)
            one.param = [item for item in args.param or [] if item.partition("=")[0].strip() in accepted]
        given = algorithm_params(one)
        try:
            algorithm = registry.make(name, **given)
        except TypeError as error:
            raise UsageError(f"{name}: {error}") from None
        built.append((name, algorithm, given, _run_settings(one, algorithm)))
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
    from . import plotting
    from .dynamics import simulate

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
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a finite number > 0; got {args.lr}")
    if kind == "figure9":
        if algorithm_flags or game_flags:
            raise UsageError(f"figure9 has fixed settings (IPO-MD, beta 0..1, tau {plotting.FIGURE9_TAU:g}, "
                             f"repaired rps-variant); {' '.join(algorithm_flags + game_flags)} do not apply "
                             "(only --steps and --lr do)")
        steps = 400 if args.steps is None else args.steps
        lr = 0.05 if args.lr is None else args.lr
        run = plotting.figure9_run(steps=steps, lr=lr)
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
        field = plotting.vector_field(algorithm, game, lr=settings["lr"] or DEFAULT_LR, mode=settings["mode"])
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
    from .dynamics import simulate
    from .models import TabularLogits

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
    from . import plotting

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
        registry = _registry()
        if args.algo[0] in registry.names() and "tau" not in registry.parameters(args.algo[0]):
            one.tau = None  # --tau is then the contours' alone
        if one.steps is None:
            one.steps = PLOT_STEPS
        built = _plot_algorithms(one)
        algorithm = built[0][1]
        if args.tau is not None:
            tau = args.tau
        elif np.size(_facts(algorithm).gap_tau) == 1:
            tau = float(np.asarray(_facts(algorithm).gap_tau).reshape(-1)[0])
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
    from . import plotting

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


# ================================================================================================= parser
def _add_game_arguments(parser: argparse.ArgumentParser, seed_help: str, required: bool = True) -> None:
    """--game NAME | --matrix FILE, --ref, --antisymmetrize, --actions, --seed: how every command names its game."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--game", metavar="NAME", help=f"a built-in game: {', '.join(named_games())}")
    source.add_argument("--matrix", metavar="FILE", help="preference matrix P[i, j] = p(i > j): .npy, .csv or .json; "
                        "a [Y, Y] matrix or an [X, Y, Y] stack (one game per prompt)")
    parser.add_argument("--ref", metavar="FILE", help="reference policy [Y] or [X, Y] (default uniform); zeros "
                        "restrict the support")
    parser.add_argument("--antisymmetrize", action="store_true", help="replace P by (P - P^T + 1)/2 instead of "
                        "rejecting a matrix with P + P^T != 1")
    parser.add_argument("--actions", type=int, help="number of actions for the sized built-in games")
    parser.add_argument("--seed", type=_seed, default=0, help=seed_help)


def cmd_verify(args) -> int:
    from .verify import Suite, checks, run_checks
    from .verify.core import ERROR
    from .verify.table import format_table

    selected = checks(args.only)
    if args.quick:
        selected = [c for c in selected if c.quick]
    if args.list:
        if args.json:
            print(json.dumps([{"name": c.name, "paper": c.paper, "location": c.location, "statement": c.statement,
                               "quick": c.quick} for c in selected]))
        else:
            for c in selected:
                print(f"{c.name:<34} {c.paper}, {c.location}\n    {c.statement}")
        return 0
    suite = Suite(games=args.games, seed=args.seed)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    results = run_checks(selected, suite, progress=progress)
    if args.json:
        print(json.dumps([r.as_dict() for r in results]))
    else:
        print(f"preference-games verify: {len(results)} results on the {len(suite.named())} named games and "
              f"{suite.n} random games (seed {suite.seed})\n")
        print(format_table(results))
    broken = [r.check.name for r in results if r.outcome.verdict == ERROR]
    if broken:
        print(f"preference-games verify: {len(broken)} check(s) raised: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="preference-games",
        description="Exact preference games for LLM alignment: equilibria, duality gaps and certificates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="solve the built-in games, run every algorithm, write a report")
    demo.add_argument("--json", action="store_true", help="print one JSON object {report, games, algorithms, "
                      "theorems}")
    demo.add_argument("--out", metavar="DIR", help=f"where to write report.html and its figures (default {DEMO_OUT}/)")
    demo.set_defaults(run=cmd_demo)

    games = commands.add_parser("games", help="list the built-in games")
    games.add_argument("--json", action="store_true", help="print a JSON object name -> description")
    games.set_defaults(run=cmd_games)

    solve = commands.add_parser(
        "solve",
        help="the (regularised) Nash equilibrium of one game, with its duality gap",
        description="Solve a preference game. tau > 0: the regularised equilibrium softmax(log pi_ref + P pi / tau); "
        "tau = 0: a Nash equilibrium by linear programming. The printed duality gap is recomputed on the "
        "returned policy.",
    )
    _add_game_arguments(solve, seed_help="seed of the random built-in games (default 0)")
    solve.add_argument("--tau", type=float, required=True, help="KL temperature tau >= 0")
    solve.add_argument("--selection", choices=SELECTIONS, default="max-entropy",
                       help="tau = 0 only: which equilibrium when the set is not a single point")
    solve.add_argument("--json", action="store_true", help="print one JSON object (keys: policy, duality_gap, ...)")
    solve.set_defaults(run=cmd_solve)

    listing = commands.add_parser(
        "algorithms",
        help="list the registered alignment algorithms",
        description="Every registered algorithm with its paper, parameters and defaults, fixed point, closed-form "
        "map and update rule.",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object name -> {paper, params, ...}")
    listing.set_defaults(run=cmd_algorithms)

    sim = commands.add_parser(
        "simulate",
        help="run one algorithm on one game and compare where it ends with its fixed point",
        description="Run an alignment algorithm on a preference game: exactly (population loss), by its closed-form "
        "map, or from sampled pairs. Without --steps it runs until no probability moves by more than 1e-12 over one "
        "period of the algorithm's schedule (one step, or one outer iteration of an anchored algorithm), or until "
        "--max-steps. It reports the final policy, its duality gap at the algorithm's tau, KL to "
        "pi_ref and the distance to the algorithm's stated fixed point. Parameters: see `preference-games "
        "algorithms`.",
    )
    sim.add_argument("--algo", required=True, metavar="NAME", help="a registered algorithm (see `preference-games "
                     "algorithms`)")
    sim.add_argument("--beta", type=float, help="mixture weight beta in [0, 1] (algorithms that take beta)")
    sim.add_argument("--tau", type=float, help="KL coefficient tau > 0 (algorithms that take tau)")
    sim.add_argument("--eta", type=float, help="mirror-descent regulariser eta (algorithms that take eta)")
    sim.add_argument("--param", action="append", metavar="KEY=VALUE", help="any other parameter of the algorithm "
                     "(integer, float, none or text; repeatable), e.g. --param inner_steps=50")
    _add_game_arguments(sim, seed_help="seed of the pair sampler and of the random built-in games (default 0)")
    sim.add_argument("--data", metavar="FILE", help="data policy mu [Y] or [X, Y] for algorithms that use one "
                     "(default pi_ref)")
    sim.add_argument("--steps", type=int, help="run exactly this many steps (default: until stationary)")
    sim.add_argument("--max-steps", type=int, help="without --steps: stop here if not yet stationary "
                     f"(default 100000; {CLOSED_FORM_MAX_STEPS} with --mode closed-form)")
    sim.add_argument("--lr", type=float, help=f"learning rate of the gradient modes (default {DEFAULT_LR:g})")
    sim.add_argument("--mode", choices=MODES, help="exact: population loss; closed-form: the paper's exact map; "
                     "sampled: --batch pairs per step (default: exact, or closed-form for map-only algorithms)")
    sim.add_argument("--sampled", action="store_true", help="shorthand for --mode sampled")
    sim.add_argument("--batch", type=int, help=f"sampled mode: pairs per step (default {DEFAULT_BATCH})")
    sim.add_argument("--labels", choices=LABELS, help="sampled mode: Bernoulli(p) labels (default) or soft labels p")
    sim.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help=f"progress bar on stderr (default: when stderr is a terminal and the run may exceed "
                     f"{PROGRESS_MIN_STEPS} steps)")
    sim.add_argument("--json", action="store_true", help="print one JSON object (keys: final_policy, duality_gap, "
                     "fixed_point, ...)")
    sim.set_defaults(run=cmd_simulate)

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
    plot.add_argument("--beta", type=float, help="mixture weight beta (to the algorithms that take beta)")
    plot.add_argument("--tau", type=float, help="KL coefficient tau (to the algorithms that take tau; contour: also "
                      "the tau of the shading, default the algorithm's or 0.1)")
    plot.add_argument("--eta", type=float, help="mirror-descent regulariser eta (to the algorithms that take eta)")
    plot.add_argument("--param", action="append", metavar="KEY=VALUE", help="any other parameter (repeatable)")
    _add_game_arguments(plot, seed_help="seed of the random built-in games (default 0)", required=False)
    plot.add_argument("--steps", type=int, help=f"steps of the dynamics (default {PLOT_STEPS}; figure9: 400)")
    plot.add_argument("--lr", type=float, help=f"learning rate of the gradient modes (default {DEFAULT_LR:g}; "
                      "figure9: 0.05)")
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

    verify = commands.add_parser(
        "verify",
        help="check every numbered result of the seed papers on the built-in and N random games",
        description="Run one executable check per numbered result of the seed papers (IPO-MD, INPO, the survey's "
        "Nash-MD and SPPO, BPO, IOPO) on the named games plus --games seeded random games, and print a table: "
        "result, paper and location, what was measured, worst error (or fitted rate), tolerance and verdict "
        "(holds / fails / holds-with-correction), then each counterexample and correction. docs/theorems.md "
        "explains every check.",
    )
    verify.add_argument("--only", action="append", type=_check_name, metavar="NAME", help="run only this check, or "
                        "every check whose name starts with it (e.g. inpo/); repeatable")
    verify.add_argument("--games", type=int, default=200, metavar="N", help="random games per check "
                        "(default 200)")
    verify.add_argument("--seed", type=_seed, default=0, metavar="S", help="seed of the random games "
                        "(default 0)")
    verify.add_argument("--quick", action="store_true", help="only the checks that take about a second or less at 200 games")
    verify.add_argument("--list", action="store_true", help="list the checks and their statements; run nothing")
    verify.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    verify.add_argument("--json", action="store_true", help="print a JSON list of objects (keys: name, paper, "
                        "location, statement, measured, worst_error, tolerance, verdict, games, counterexample, "
                        "correction, seconds)")
    verify.set_defaults(run=cmd_verify)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentsError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except (UsageError, ValueError) as error:
        print(f"preference-games {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SolverError, SolverDiverged) as error:
        print(f"preference-games {args.command}: solver failed: {error}", file=sys.stderr)
        return EXIT_SOLVER_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as `yes | head` does
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
