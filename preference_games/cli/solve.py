"""``preference-games solve``: the (regularised) Nash equilibrium of one game, with its duality gap."""

from __future__ import annotations

from ..equilibria import SELECTIONS, duality_gap, exploitability, nash_lp, regularized_nash
from ..games import PreferenceGame
from ..policies import policy_lists
from .common import add_game_arguments, emit, game_from_args


def add_parser(commands) -> None:
    solve = commands.add_parser(
        "solve",
        help="the (regularised) Nash equilibrium of one game, with its duality gap",
        description="Solve a preference game. tau > 0: the regularised equilibrium softmax(log pi_ref + P pi / tau); "
        "tau = 0: a Nash equilibrium by linear programming. The printed duality gap is recomputed on the "
        "returned policy.",
    )
    add_game_arguments(solve, seed_help="seed of the random built-in games (default 0)")
    solve.add_argument("--tau", type=float, required=True, help="KL temperature tau >= 0")
    solve.add_argument("--selection", choices=SELECTIONS, default="max-entropy",
                       help="tau = 0 only: which equilibrium when the set is not a single point")
    solve.add_argument("--json", action="store_true", help="print one JSON object (keys: policy, duality_gap, ...)")
    solve.set_defaults(run=cmd_solve)


def solve_report(game: PreferenceGame, tau: float, selection: str) -> dict:
    """Solve one game and collect what ``solve`` prints; every number is measured on the returned policy."""
    if tau == 0:
        eq = nash_lp(game, selection=selection)
        extra = {"value": policy_lists(eq.value[None]), "unique": [bool(u) for u in eq.unique], "selection": selection,
                 "method": list(eq.method), "fallback": [bool(f) for f in eq.fallback]}
    else:  # any other tau, including a negative or NaN one, is the regularised solver's to accept or refuse
        eq = regularized_nash(game, tau)
        extra = {"newton_steps": eq.iterations, "products_with_P": eq.matvecs}
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


def cmd_solve(args) -> int:
    return emit(solve_report(game_from_args(args), args.tau, args.selection), args, print_solve)
