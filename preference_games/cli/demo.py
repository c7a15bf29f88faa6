"""``preference-games demo``: solve the built-in games, run every algorithm, check the theorems, write a report."""

from __future__ import annotations

import json
from collections import Counter

from .. import __version__
from .common import output_folder

#: Where ``demo`` writes its report unless told otherwise (relative to the working directory).
DEMO_OUT = "preference-games-report"


def add_parser(commands) -> None:
    demo = commands.add_parser("demo", help="solve the built-in games, run every algorithm, write a report")
    demo.add_argument("--json", action="store_true", help="print one JSON object {report, games, algorithms, "
                      "theorems}")
    demo.add_argument("--out", metavar="DIR", help=f"where to write report.html and its figures (default {DEMO_OUT}/)")
    demo.set_defaults(run=cmd_demo)


def cmd_demo(args) -> int:
    from dataclasses import asdict

    from ..report import DEMO_TAU, VERIFY_GAMES, build_report

    folder = output_folder(args.out or DEMO_OUT)
    report = build_report(folder)
    transformer = _transformer_section(folder)
    if args.json:
        print(json.dumps({"report": str(report.page), "games": [asdict(row) for row in report.games],
                          "algorithms": [asdict(row) for row in report.algorithms],
                          "theorems": report.theorems, "transformer": transformer}))  # fmt: skip
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
    print_transformer(transformer)
    print(f"\nReport with every algorithm, Figure 9, a vector field, convergence plots and the theorem checks: "
          f"{report.page}")
    return 0


def _transformer_section(folder) -> dict | None:
    """llm_backend's section (``llm_backend.demo``), or None without the llm extra."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return None
    from llm_backend.demo import transformer_section

    return transformer_section(folder)


def print_transformer(section: dict | None) -> None:
    if section is None:
        print("\nTransformer section skipped: it needs the llm extra (pip install 'preference-games[llm]').")
        return
    first, last = section["initial_duality_gap"], section["final_duality_gap"]
    curve = ", ".join(f"{step}: {gap:.2e}" for step, gap in section["duality_gap"])
    tv = ", ".join(f"beta={beta}: {value:.2e}" for beta, value in section["mixture_tv"].items())
    far = ", ".join(f"{value:.2e}" for value in section["mixture_tv_independent"].values())
    print(f"\nA transformer on a sequence game (llm_backend): {section['algorithm']} trains a {section['model']} "
          f"({section['parameters']:,} parameters) on {section['game']} (27 strings), {section['steps']} steps of "
          f"{section['batch']} sampled pairs in {section['seconds']:.0f} s.\n"
          f"  exact duality gap {first:.2e} -> {last:.2e} ({first / last:.0f}x smaller); by step: {curve}\n"
          f"  token-level vs sequence-level geometric mixture with pi_ref, total variation: {tv} (the trained "
          f"policy); {far} (an independently initialised model)\n"
          f"  figure: {section['figure']}")
