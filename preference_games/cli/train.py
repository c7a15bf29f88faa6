"""``preference-games train``: an algorithm object of the engine, unchanged, training a HuggingFace transformer
(:class:`llm_backend.trainer.Trainer`).

Two ways to name what it plays:

* ``--game SEQUENCE-GAME``: an enumerable sequence game (``preference-games games`` lists them). The model speaks
  the game's token layout; the oracle defaults to the game's exact preferences, read through the game's tokenizer;
  the exact duality gap is measured every ``--eval-every`` steps.
* ``--prompts FILE``: prompts from a local JSONL, JSON or CSV file with a ``prompt`` column (TRL's convention),
  judged by ``--oracle reward:DIR`` (a Bradley–Terry reward model) or ``pairwise:DIR`` (a pairwise preference
  model); an offline algorithm reads ``prompt``/``chosen``/``rejected`` rows from ``--preferences FILE``.

``--model tiny`` builds a small Llama from a config (and, for text, a character-level tokenizer) — nothing is
downloaded; ``--model DIR`` loads a local checkpoint (one this command saved, or any causal LM with its tokenizer).

This module needs only argparse to build its parser: ``llm_backend`` (and transformers) is imported when the
command runs, so the other commands start without it, and without the ``llm`` extra the command says what to
install. (The CLI is the top floor of the house, the one place that may look at both halves.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import SolverDiverged, UsageError
from .common import (add_algorithm_arguments, algorithm_params, emit, facts, jsonable, make_algorithm, print_lines,
                     seed, tau_text)
from .games import sequence_games

#: Defaults that depend on what is trained: on a sequence game, the settings the README's acceptance figures were
#: measured with; on text, the usual ones for fine-tuning a language model.
GAME_DEFAULTS = {"batch": 64, "lr": 1e-4, "eval_every": 100}
TEXT_DEFAULTS = {"batch": 8, "lr": 1e-5, "eval_every": 10}
_PARSER = None  # the train subparser, for its defaults (set by add_parser)
TINY_INIT_SCALE = 0.1  # std of a tiny model's weights: a reference far enough from uniform to have a gap to close
DTYPES = ("float32", "float64", "bfloat16")


def add_parser(commands) -> None:
    cmd = commands.add_parser(
        "train",
        help="train a transformer with any algorithm (the llm extra)",
        description="Train a HuggingFace causal language model with an algorithm of the engine, unchanged: on an "
        "enumerable sequence game (exact duality gap along the run) or on prompts from a file judged by a reward or "
        "pairwise preference model. Writes metrics.jsonl and save_pretrained checkpoints under --out. Parameters of "
        "the algorithm: see `preference-games algorithms`.",
    )
    cmd.add_argument("--algo", metavar="NAME", help="a registered algorithm (required unless --resume)")
    add_algorithm_arguments(cmd, to="algorithms")
    cmd.add_argument("--model", metavar="PATH|tiny", help="(required unless --resume) a local model directory, or `tiny`: a "
                     "small Llama built from a config (nothing is downloaded)")
    what = cmd.add_mutually_exclusive_group()
    what.add_argument("--game", metavar="NAME", help="a sequence game (`preference-games games` lists them)")
    what.add_argument("--prompts", metavar="FILE", help="prompts: .jsonl, .json or .csv with a `prompt` column")
    cmd.add_argument("--preferences", metavar="FILE", help="offline algorithms: rows with prompt, chosen, rejected")
    cmd.add_argument("--oracle", metavar="KIND", help="game (the game's exact preferences; the default with --game), "
                     "reward:DIR (a sequence classifier with one output, p = sigmoid(r - r')) or pairwise:DIR "
                     "(a classifier of 'A is better than B', scored in both orders)")
    cmd.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    cmd.add_argument("--out", metavar="DIR", help="(required unless --resume) where metrics.jsonl, the checkpoints "
                     "and the run's arguments go")
    cmd.add_argument("--resume", metavar="DIR", help="continue the run written to DIR from its latest complete "
                     "checkpoint (see --save-every), with the options it was started with; the resumed run's metrics "
                     "equal an uninterrupted run's, bit for bit on a CPU")
    cmd.add_argument("--batch", type=int, help=f"pairs per micro-batch (default {GAME_DEFAULTS['batch']} on a game, "
                     f"{TEXT_DEFAULTS['batch']} on text)")
    cmd.add_argument("--accumulate", type=int, default=1, help="micro-batches per step (default 1)")
    cmd.add_argument("--lr", type=float, help=f"learning rate (default {GAME_DEFAULTS['lr']:g} on a game, "
                     f"{TEXT_DEFAULTS['lr']:g} on text)")
    cmd.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw", help="default adamw")
    cmd.add_argument("--lr-schedule", choices=("constant", "linear", "cosine"), default="linear",
                     help="decay to 0 over the run after --warmup steps (default linear)")
    cmd.add_argument("--warmup", type=int, default=0, help="linear warm-up steps (default 0)")
    cmd.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (default 1; 0 turns it off)")
    cmd.add_argument("--labels", choices=("soft", "bernoulli"), default="soft", help="soft: the oracle's p; "
                     "bernoulli: a 0/1 draw from it (default soft)")
    cmd.add_argument("--pairs", choices=("two-samples", "tournament", "win-rate"), default="two-samples",
                     help="two samples per prompt (default), best/worst of --k by tournament (INPO), or SPPO's "
                     "--k-sample win rate")
    cmd.add_argument("--k", type=int, default=8, help="responses per prompt for --pairs tournament/win-rate (8)")
    cmd.add_argument("--eval-every", type=int, metavar="N", help="KL to the reference, win rate against it and, on "
                     f"a game, the exact duality gap every N steps (default {GAME_DEFAULTS['eval_every']} on a game, "
                     f"{TEXT_DEFAULTS['eval_every']} on text)")
    cmd.add_argument("--eval-batch", type=int, default=64, help="prompts in the evaluation batch (default 64)")
    cmd.add_argument("--save-every", type=int, metavar="N", help="a checkpoint every N steps (always one at the end)")
    cmd.add_argument("--max-new-tokens", type=int, default=32, help="text: longest response (default 32)")
    cmd.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1: the policy)")
    cmd.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1: the policy)")
    cmd.add_argument("--lora", type=int, metavar="RANK", help="train LoRA adapters of this rank on every linear map "
                     "instead of the whole model; the reference is then the base model with the adapter disabled and "
                     "each snapshot a second adapter (no copy of the model)")
    cmd.add_argument("--fsdp", action="store_true", default=None,
                     help="shard the model, its gradients, the optimiser's moments and every copy of the model "
                     "(reference, snapshots, EMA) across the processes with torch's FSDP2; needs 2+ processes "
                     "(torchrun, or accelerate launch --config_file configs/accelerate_fsdp.yaml, which implies it)")
    cmd.add_argument("--hidden", type=int, default=32, help="--model tiny: width (default 32)")
    cmd.add_argument("--layers", type=int, default=2, help="--model tiny: layers (default 2)")
    cmd.add_argument("--dtype", choices=DTYPES, help="the model's dtype (default float64 for a tiny model on a game, "
                     "float32 otherwise)")
    cmd.add_argument("--device", default="cpu", help="cpu (default) or cuda; bf16 autocast is on for cuda")
    cmd.add_argument("--seed", type=seed, default=0, help="seed of the initialisation and of every draw (default 0)")
    cmd.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object (initial_duality_gap, "
                     "final_duality_gap, duality_gap as [step, gap] pairs on a game; kl_to_ref, win_rate_vs_ref, ...)")
    cmd.set_defaults(run=cmd_train)
    global _PARSER
    _PARSER = cmd


def _positive_ints(args) -> None:
    for name in ("steps", "batch", "accumulate", "k", "eval_every", "eval_batch", "save_every", "max_new_tokens",
                 "hidden", "layers", "lora"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer; got {value}")


ARGS_FILE = "train_args.json"  # the options a run was started with, in its --out folder (what --resume reads)
NOT_SAVED = ("resume", "json", "progress", "run", "command")  # how to show a run, not what it computes


def _resume(args) -> str:
    """With --resume DIR: the arguments the run was started with (any other option given is refused, since a run
    continues only as it began) and the latest complete checkpoint."""
    from llm_backend.trainer import latest_checkpoint

    given = [name for name, value in vars(args).items()
             if name not in NOT_SAVED and value != _PARSER.get_default(name)]
    if given:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise UsageError(f"--resume continues a run with the options it was started with; drop {flags}")
    saved = os.path.join(args.resume, ARGS_FILE)
    if not os.path.isfile(saved):
        raise UsageError(f"--resume {args.resume}: no run was started there (no {ARGS_FILE})")
    checkpoint = latest_checkpoint(args.resume)
    if checkpoint is None:
        raise UsageError(f"--resume {args.resume}: no complete checkpoint yet (train with --save-every N)")
    with open(saved) as handle:
        vars(args).update(json.load(handle))
    args.out = args.resume
    return checkpoint


def _check(args) -> None:
    """What is about the command line: flags that contradict each other or do not apply."""
    missing = [flag for flag, value in (("--algo", args.algo), ("--model", args.model), ("--out", args.out),
                                        ("--game or --prompts", args.game or args.prompts)) if value is None]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)}")
    _positive_ints(args)
    if args.game is not None and args.game not in sequence_games():
        raise UsageError(f"unknown sequence game {args.game!r}; choose one of: {', '.join(sequence_games())}")
    if args.prompts is not None and args.oracle in (None, "game"):
        raise UsageError("--prompts needs a judge: --oracle reward:DIR or --oracle pairwise:DIR")
    if args.oracle is not None and args.oracle != "game":
        kind, sep, path = args.oracle.partition(":")
        if kind not in ("reward", "pairwise") or not sep or not path:
            raise UsageError(f"--oracle must be game, reward:DIR or pairwise:DIR; got {args.oracle!r}")
    if args.preferences is not None and args.game is not None:
        raise UsageError("--preferences are text rows; on a --game the data policy is the reference")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} exists and is not a directory")


def _load_llm():
    try:
        from transformers.utils import logging
    except ImportError:
        raise UsageError("train needs the llm extra (transformers, peft, accelerate): pip install "
                         "'preference-games[llm]'") from None
    # HF's loading bars and advice would land between our progress bar and our one-line errors on stderr
    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _oracle(args, codec, game):
    from llm_backend.oracles import GameOracle, PairwiseOracle, RewardModelOracle

    if args.oracle in (None, "game"):
        return GameOracle(game, codec)
    kind, _, path = args.oracle.partition(":")
    cls = RewardModelOracle if kind == "reward" else PairwiseOracle
    return cls.from_pretrained(path, codec)


def train_report(args) -> dict:
    """Build the model, the oracle and the data as the arguments say, train, and collect the report."""
    _load_llm()
    checkpoint = _resume(args) if args.resume else None
    _check(args)
    given = algorithm_params(args)
    algorithm = make_algorithm(args.algo, given)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: this machine has no GPU torch can use")

    from llm_backend.data import PreferenceDataset, PromptDataset
    from llm_backend.policy import TransformerPolicy
    from llm_backend.text import TextCodec, char_tokenizer, game_tokenizer
    from llm_backend.trainer import Trainer
    from ..sequences import SequenceOracle, sequence_game_by_name

    defaults = GAME_DEFAULTS if args.game else TEXT_DEFAULTS
    batch, lr = args.batch or defaults["batch"], args.lr if args.lr is not None else defaults["lr"]
    eval_every = args.eval_every or defaults["eval_every"]
    dtype_name = args.dtype or ("float64" if args.game and args.model == "tiny" else "float32")
    dtype = getattr(torch, dtype_name)
    sampling = {"temperature": args.temperature, "top_p": args.top_p}
    game = sequence_game_by_name(args.game, args.seed) if args.game else None
    if game is not None:
        tokenizer = game_tokenizer(game)
        if args.model == "tiny":
            policy = TransformerPolicy.for_game(game, hidden=args.hidden, layers=args.layers, seed=args.seed,
                                                dtype=dtype, init_scale=TINY_INIT_SCALE, **sampling)
        else:
            policy = TransformerPolicy.from_pretrained(args.model, dtype=dtype, **sampling)
        prompts = SequenceOracle(game)
    else:
        from transformers import AutoTokenizer

        if args.model == "tiny":
            tokenizer = char_tokenizer()
        elif not os.path.isdir(args.model):
            raise UsageError(f"no model directory at {args.model}")
        else:
            tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
        codec_for_data = TextCodec(tokenizer)
        prompts = PromptDataset(args.prompts, codec_for_data)
        if args.model == "tiny":
            policy = TransformerPolicy.tiny(tokenizer, args.max_new_tokens, hidden=args.hidden, layers=args.layers,
                                            seed=args.seed, dtype=dtype, **sampling)
        else:
            policy = TransformerPolicy.from_pretrained(args.model, args.max_new_tokens, dtype=dtype, **sampling)
        limit = getattr(policy.model.config, "max_position_embeddings", None)
        if limit is not None and prompts.longest_prompt + policy.length > limit:
            raise UsageError(f"the model's context ({limit} positions) is shorter than the longest prompt "
                             f"({prompts.longest_prompt} tokens) plus --max-new-tokens {policy.length}")
    if args.lora is not None:
        policy = policy.with_lora(r=args.lora)
    # under torchrun or accelerate launch, each process on its own GPU (a bare "cuda" would put them all on the first)
    local = os.environ.get("LOCAL_RANK")
    policy = policy.to(f"cuda:{local}" if args.device == "cuda" and local is not None else args.device)
    codec = TextCodec(tokenizer)
    oracle = _oracle(args, codec, game)
    preferences = PreferenceDataset(args.preferences, codec) if args.preferences else None
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    trainer = Trainer(algorithm, policy, oracle, prompts, steps=args.steps, preferences=preferences, game=game,
                      batch=batch, accumulate=args.accumulate, lr=lr, optimizer=args.optimizer,
                      lr_schedule=args.lr_schedule, warmup=args.warmup, clip=args.clip or None, labels=args.labels,
                      pairs=args.pairs, k=args.k, seed=args.seed, eval_every=eval_every, eval_batch=args.eval_batch,
                      out=args.out, save_every=args.save_every, tokenizer=tokenizer, progress=progress,
                      fsdp=args.fsdp)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    elif trainer.dist.main:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, ARGS_FILE), "w") as handle:
            json.dump({k: v for k, v in vars(args).items() if k not in NOT_SAVED}, handle, indent=1)
    try:
        run = trainer.train()
    except FloatingPointError as error:
        raise SolverDiverged(str(error)) from None
    return _report(args, algorithm, run, {"batch": batch, "lr": lr, "eval_every": eval_every, "dtype": dtype_name})


def _curve(run, name: str) -> list[list] | None:
    steps, values = run.series(name)
    return [[int(s), float(v)] for s, v in zip(steps, values)] or None


def _report(args, algorithm, run, settings: dict) -> dict:
    rows = [row for row in run.metrics if "pairs_per_s" in row]
    seconds = sum(row["seconds"] for row in rows)
    tokens = sum(row["tokens"] for row in rows)
    report = {
        "algorithm": algorithm.describe(), "paper": algorithm.paper, "model": args.model,
        "game": args.game, "prompts": args.prompts, "oracle": args.oracle or "game", "steps": args.steps,
        **settings, "optimizer": args.optimizer, "lr_schedule": args.lr_schedule, "pairs_mode": args.pairs,
        "labels": args.labels, "seed": args.seed, "lora_rank": args.lora,
        "kl_to_ref": _curve(run, "kl_to_ref"), "win_rate_vs_ref": _curve(run, "win_rate_vs_ref"),
        "pairs": run.pairs, "seconds": seconds,
        "pairs_per_s": run.pairs / seconds if seconds else None, "tokens_per_s": tokens / seconds if seconds else None,
        "out": os.path.abspath(args.out), "metrics": os.path.join(os.path.abspath(args.out), "metrics.jsonl"),
    }
    if args.game:
        report.update({"tau": jsonable(facts(algorithm).gap_tau), "initial_duality_gap": run.initial_duality_gap,
                       "final_duality_gap": run.final_duality_gap, "duality_gap": _curve(run, "duality_gap"),
                       "kl_to_fixed_point": _curve(run, "kl_to_fixed_point"), "mixture_tv": run.mixture_tv})
    return report


def print_train(report: dict) -> None:
    source = f"game {report['game']}" if report["game"] else f"prompts {report['prompts']}"
    print(f"{report['algorithm']} on {source}: model {report['model']}, {report['steps']} steps of {report['batch']} "
          f"pairs ({report['pairs_mode']}, {report['labels']} labels), {report['optimizer']} at lr = "
          f"{report['lr']:g} ({report['lr_schedule']}), seed {report['seed']}")
    lines = []
    if report["game"]:
        first, last = report["initial_duality_gap"], report["final_duality_gap"]
        ratio = f"{first / last:.3g}x smaller" if 0 < last <= first else (
            "zero at the end" if last == 0 else f"{last / first:.3g}x larger")
        lines.append((f"duality gap at tau = {tau_text(report['tau'])}", f"{first:.3e} -> {last:.3e}   ({ratio})"))
        if report["kl_to_fixed_point"]:
            kl = report["kl_to_fixed_point"]
            lines.append(("KL(pi || fixed point)", f"{kl[0][1]:.3e} -> {kl[-1][1]:.3e}"))
        if report["mixture_tv"] is not None:
            lines.append(("mixture TV", f"{report['mixture_tv']:.3e}   (token-level against sequence-level "
                                        "mixture, final policy)"))
    kl, win = report["kl_to_ref"], report["win_rate_vs_ref"]
    lines.append(("KL(pi || pi_ref), estimated", f"{kl[-1][1]:.3e} at the end"))
    lines.append(("win rate against pi_ref", f"{win[-1][1]:.3f} at the end"))
    speed = report["pairs_per_s"]
    lines.append(("time", f"{report['seconds']:.1f} s training ({report['pairs']} pairs"
                          + (f", {speed:,.1f} pairs/s, {report['tokens_per_s']:,.0f} tokens/s)" if speed else ")")))
    lines.append(("written", f"{report['metrics']} and checkpoints in {report['out']}"))
    print_lines(lines)


def cmd_train(args) -> int:
    return emit(train_report(args), args, print_train)
