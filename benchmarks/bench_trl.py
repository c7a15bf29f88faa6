"""Throughput against TRL, in one run: online IPO with two samples per prompt, and exact geometric-mixture sampling.

**Trainer.** The same tiny Llama (``llm_backend.policy.tiny_llama``: hidden 64, 2 layers, the 100-token
``char_tokenizer``; one copy of the same initial weights each), the same prompts, batch of 8 prompts, up to 64 new
tokens (EOS ends a response), temperature 1, AdamW at the same learning rate with the same clipping, both judged
by the same reward model (a tiny ``LlamaForSequenceClassification`` with one output): our
:class:`~llm_backend.trainer.Trainer` with ``make("online-ipo")`` against TRL's ``OnlineDPOTrainer`` with
``loss_type="ipo"`` (``trl.experimental.online_dpo`` in TRL 1.9), in

* TRL's fastest correct configuration: generation with the KV cache (which TRL turns off whenever gradient
  checkpointing is on), gradient checkpointing off, float32 (bf16 autocast made its CPU steps 30% slower here);
* TRL's default configuration: the same task (batch, tokens, loss, τ, temperature, learning rate), every speed
  setting left at TRL's default (gradient checkpointing on, hence no KV cache in generation; bf16 autocast).

Every timed model uses PyTorch's sdpa attention (tiny_llama's eager attention is kept for the float64 checks):
TRL's best configuration ran 20% faster with it here, ours the same either way. A step is 8 pairs. Ours is timed by
the trainer's own per-step ``seconds`` (sampling, oracle, objective, backward, optimiser, scheduler); TRL's between
the ``on_step_begin`` and ``on_step_end`` callbacks (the same work; logging falls after it). Each run's first step
(lazy initialisation) is dropped; pairs/s is 8 / the median step time over every repetition.

**Mixture.** 8 prompts × 64 new tokens (no EOS: every call decodes all 64, the same work) from the token-level
mixture π^{1−β} π_ref^β, β = ½, of two independently initialised models: ours (``policy.mixture_sampler(ref,
beta).sample``, one KV cache per model) against TRL's Nash-MD ``GeometricMixtureWrapper`` run correctly, i.e.
with ``use_cache=False`` in its generation config so that ``generate`` feeds both models the whole prefix at every
token; and one plain cached ``generate`` of one model as the floor.

**Checks before any timing** (exit status 1 if one fails): in float64, our two-cache mixture's greedy and seeded
tokens equal full recomputation's (``sampling.full_recompute_mixture_sample``), and TRL's wrapper, recomputing as
timed, gives the same greedy tokens; every loss of every timed step is finite (both trainers start from deep copies
of one model). The float64 checks use prompts of one length: HF's attention on left-padded float64 rows is NaN (the
project's policy masks around it; ``generate`` does not). Not a check, a finding recorded in the output: the
wrapper with the generation config TRL's Nash-MD trainer builds when gradient checkpointing is off
(``use_cache=True``) feeds each model only the newest token, without a cache, under transformers 5.x — its tokens
are compared too.

**Threads.** Everything runs on one intra-op thread, the setting our trainer picks for models under a million
parameters: with torch's default two threads on the loaded 2-core machine TRL's best configuration ran ~30× slower
(0.67 pairs/s against 19), so one thread is also TRL's fastest setting here.

Repetitions are interleaved (ours, TRL best, TRL default, rotated each repetition); ratios are taken from medians
of the same run. Without TRL installed (the ``bench`` extra) the TRL rows are skipped with a message.

    python benchmarks/bench_trl.py                       # everything (~2–3 min on a loaded 2-core machine)
    python benchmarks/bench_trl.py --quick               # tiny sizes, one repetition (the test suite's run)
    python benchmarks/bench_trl.py --json results.json   # also write the figures
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# Measure this checkout's packages even when an editable install points at another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from llm_backend.data import PromptDataset
from llm_backend.oracles import RewardModelOracle
from llm_backend.policy import TransformerPolicy, tiny_llama
from llm_backend.sampling import full_recompute_mixture_sample
from llm_backend.text import TextCodec, char_tokenizer
from llm_backend.trainer import Trainer
from preference_games.algorithms import make
from preference_games.training import one_thread

TAU, BETA, LR = 0.1, 0.5, 1e-4
FULL = {"hidden": 64, "layers": 2, "batch": 8, "new_tokens": 64, "steps": 6, "default_steps": 3, "reps": 5,
        "mixture_reps": 9}
QUICK = {"hidden": 16, "layers": 1, "batch": 2, "new_tokens": 8, "steps": 2, "default_steps": 2, "reps": 1,
         "mixture_reps": 1}
TRAINER_TARGET, MIXTURE_TARGET = 1.5, 2.5  # ours ÷ TRL (issue 13)


# ================================================================================================ shared set-up
def prompt_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` short prompts of 2–5 words (15–45 characters): left padding is exercised in every batch."""
    rng = random.Random(seed)
    words = ["apple", "river", "seven", "blue", "quick", "stone", "light", "music", "north", "paper"]
    return [f"Q{i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(2, 5))) + "?" for i in range(count)]


def check_prompts(count: int) -> list[str]:
    """Prompts of one length (no padding), for the float64 token checks (module docstring)."""
    return [f"Check {i:02d}: say something." for i in range(count)]


def reward_model(tokenizer, seed: int = 5):
    """The judge of both trainers: a tiny Llama sequence classifier with one output, seeded, eager attention."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForSequenceClassification(config).eval()


def text_policy(model, tokenizer, length: int, *, eos: bool = True) -> TransformerPolicy:
    """Our policy over ``model``; ``eos=False`` decodes exactly ``length`` tokens (the mixture's fixed work)."""
    return TransformerPolicy(model, length, eos_id=tokenizer.eos_token_id if eos else None,
                             pad_id=tokenizer.pad_token_id)


def left_padded(tokenizer, texts: list[str]):
    """TRL's prompt encoding: BOS written in the text (our codec prepends it), left padding, no added tokens."""
    return tokenizer(["<bos>" + t for t in texts], padding=True, padding_side="left", add_special_tokens=False,
                     return_tensors="pt")


def trl_available() -> bool:
    try:
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def quiet():
    """TRL's experimental-API warnings and the HF Trainer's end-of-training print, kept off our tables."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def median(values) -> float:
    return float(statistics.median(values))


# ================================================================================================ the trainers
def ours_run(model, tokenizer, rm, prompts: list[str], size: dict, steps: int) -> tuple[list[float], list[float]]:
    """One fresh run of our trainer: (per-step seconds, per-step losses)."""
    codec = TextCodec(tokenizer)
    policy = text_policy(copy.deepcopy(model), tokenizer, size["new_tokens"])
    oracle = RewardModelOracle(copy.deepcopy(rm), tokenizer, codec)
    trainer = Trainer(make("online-ipo", tau=TAU), policy, oracle, PromptDataset(prompts, codec), steps=steps,
                      batch=size["batch"], lr=LR, clip=1.0, eval_every=steps, eval_batch=size["batch"])
    rows = trainer.train().metrics[1:]
    return [row["seconds"] for row in rows], [row["loss"] for row in rows]


def trl_run(model, tokenizer, rm, prompts: list[str], size: dict, steps: int, *, best: bool):
    """One fresh run of TRL's OnlineDPOTrainer (IPO loss): (per-step seconds, per-step losses)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    class Clock(TrainerCallback):
        """Step times between on_step_begin and on_step_end, and the loss of every logged step."""

        def __init__(self):
            self.seconds, self.losses, self.start = [], [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.start)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    speed = {"gradient_checkpointing": False, "bf16": False} if best else {}  # else TRL's defaults (True, True)
    clock = Clock()
    with tempfile.TemporaryDirectory() as out, quiet():
        args = OnlineDPOConfig(output_dir=out, per_device_train_batch_size=size["batch"],
                               max_new_tokens=size["new_tokens"], temperature=1.0, loss_type="ipo", beta=TAU,
                               learning_rate=LR, max_grad_norm=1.0, max_steps=steps, logging_steps=1,
                               save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=0,
                               **speed)
        trainer = OnlineDPOTrainer(model=copy.deepcopy(model), reward_funcs=copy.deepcopy(rm),
                                   reward_processing_classes=tokenizer, args=args, processing_class=tokenizer,
                                   train_dataset=Dataset.from_dict({"prompt": ["<bos>" + p for p in prompts]}),
                                   callbacks=[clock])
        if best:  # what "fastest correct" means: generation really reads the KV cache
            assert trainer.generation_config.use_cache and not args.gradient_checkpointing
        trainer.train()
    return clock.seconds, clock.losses


def trainer_section(model, tokenizer, size: dict, with_trl: bool, log) -> dict:
    """Interleaved repetitions of each system; medians, pairs/s, ratios."""
    rm = reward_model(tokenizer)
    prompts = prompt_texts(64)
    systems = {"ours": lambda: ours_run(model, tokenizer, rm, prompts, size, size["steps"])}
    if with_trl:
        systems["trl_best"] = lambda: trl_run(model, tokenizer, rm, prompts, size, size["steps"], best=True)
        systems["trl_default"] = lambda: trl_run(model, tokenizer, rm, prompts, size, size["default_steps"],
                                                 best=False)
    seconds = {name: [] for name in systems}
    losses = {name: [] for name in systems}
    names = list(systems)
    for rep in range(size["reps"]):
        for name in names[rep % len(names):] + names[:rep % len(names)]:  # rotated: no system always goes first
            times, run_losses = systems[name]()
            seconds[name] += times[1:]  # the first step of a run pays lazy initialisation
            losses[name] += run_losses
            log(f"  trainer rep {rep + 1}/{size['reps']} {name}: median step {median(times[1:]):.3f} s")
    result = {}
    for name in names:
        if not losses[name] or not all(math.isfinite(v) for v in losses[name]):
            raise CheckFailed(f"{name}: a non-finite (or no) loss: {losses[name]}")
        step = median(seconds[name])
        result[name] = {"median_step_s": step, "pairs_per_s": size["batch"] / step, "steps_timed": len(seconds[name]),
                        "losses_finite": True, "first_loss": losses[name][0]}
    if with_trl:
        result["ratio_vs_trl_best"] = result["ours"]["pairs_per_s"] / result["trl_best"]["pairs_per_s"]
        result["ratio_vs_trl_default"] = result["ours"]["pairs_per_s"] / result["trl_default"]["pairs_per_s"]
    return result


def breakdown_section(model, tokenizer, size: dict, reps: int) -> dict:
    """Where our step's time goes, rebuilt from the pieces the trainer composes (public classes, so that this does
    not lean on the trainer's internals): the one sampling call of ``PairSampler("policy").sample``, which draws
    both sides of every pair (``sample(x, 2)``: 2·batch sequences), and the rest of the step (oracle, objective,
    backward, AdamW); beside it TRL's one ``generate`` of both responses (2·batch sequences, KV cache). Medians."""
    from llm_backend.oracles import Environment
    from preference_games.samplers import PairSampler, Roles

    codec = TextCodec(tokenizer)
    policy = text_policy(copy.deepcopy(model), tokenizer, size["new_tokens"])
    roles = Roles(policy=policy, ref=policy.snapshot(), data=None)
    env = Environment(PromptDataset(prompt_texts(64), codec), RewardModelOracle(reward_model(tokenizer), tokenizer,
                                                                                codec))
    algorithm, optimizer = make("online-ipo", tau=TAU), torch.optim.AdamW(policy.parameters(), lr=LR)
    x = codec.encode_prompts(prompt_texts(size["batch"], seed=1))
    encoded = left_padded(tokenizer, prompt_texts(size["batch"], seed=1))
    generation = trl_generation_config(tokenizer, size["new_tokens"], sample=True, cache=True, eos=True)
    view, generator = policy.view(), torch.Generator().manual_seed(0)
    times = {"ours_sampling_both_sides": [], "ours_rest_of_step": [], "hf_generate_2x_batch": []}
    for _ in range(reps):
        times["ours_sampling_both_sides"].append(timed(lambda: view.sample(x, 2, generator)))
        pairs = PairSampler("policy").sample(roles, env, size["batch"], generator, "soft")

        def rest():
            env.prob(pairs.x, pairs.y, pairs.y2)
            optimizer.zero_grad()
            algorithm.objective(roles, pairs).sum().backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()

        times["ours_rest_of_step"].append(timed(rest))
        with torch.no_grad():
            times["hf_generate_2x_batch"].append(timed(lambda: model.generate(
                input_ids=encoded.input_ids.repeat(2, 1), attention_mask=encoded.attention_mask.repeat(2, 1),
                generation_config=generation)))
    return {name: median(values) for name, values in times.items()}


# ================================================================================================ the mixture
def trl_generation_config(tokenizer, new_tokens: int, *, sample: bool, cache: bool, eos: bool):
    """A GenerationConfig as TRL's online trainers build it: sampling at temperature 1 with top-k off (HF's
    default keeps the 50 likeliest tokens) and top-p 1, i.e. the model's own distribution; or greedy."""
    from transformers import GenerationConfig

    sampling = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
    return GenerationConfig(max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id if eos else None,
                            use_cache=cache, **sampling)


def trl_mixture(policy_model, ref_model, generation):
    from trl.experimental.nash_md.nash_md_trainer import GeometricMixtureWrapper

    return GeometricMixtureWrapper(model=policy_model, ref_model=ref_model, generation_config=generation,
                                   mixture_coef=BETA, device=torch.device("cpu"))


def llama(tokenizer, size: dict, seed: int, *, timed: bool = True, dtype: torch.dtype = torch.float32):
    """The benchmark's model: :func:`tiny_llama` over ``tokenizer``, ``size``'s hidden width and layers. ``timed``
    switches eager attention (tiny_llama's, kept for the float64 checks) to PyTorch's sdpa: TRL's best configuration
    ran 20% faster with it here (ours the same either way), and both sides always read the same kernel."""
    model = tiny_llama(len(tokenizer), pad_id=tokenizer.pad_token_id, bos_id=tokenizer.bos_token_id,
                       eos_id=tokenizer.eos_token_id, hidden=size["hidden"], layers=size["layers"], positions=256,
                       seed=seed, dtype=dtype)
    if timed:
        model.set_attn_implementation("sdpa")
    return model


def mixture_models(tokenizer, size: dict, *, timed: bool):
    """π (seed 0) and a frozen π_ref (seed 1), without EOS: exactly ``new_tokens`` tokens per response; float32 and
    sdpa to be timed, float64 and eager to be checked token for token."""
    dtype, length = torch.float32 if timed else torch.float64, size["new_tokens"]
    policy = text_policy(llama(tokenizer, size, 0, timed=timed, dtype=dtype), tokenizer, length, eos=False)
    ref = text_policy(llama(tokenizer, size, 1, timed=timed, dtype=dtype), tokenizer, length, eos=False)
    return policy, ref.snapshot()


def mixture_checks(tokenizer, size: dict, with_trl: bool) -> dict:
    """Token-for-token checks in float64 (module docstring). Raises CheckFailed if ours or TRL's correct run
    disagrees with full recomputation; records what the cached-flag wrapper does."""
    policy, ref = mixture_models(tokenizer, size, timed=False)
    texts = check_prompts(size["batch"])
    x = TextCodec(tokenizer).encode_prompts(texts)
    mixture = policy.mixture_sampler(ref, BETA)
    greedy = full_recompute_mixture_sample(policy, ref, BETA, x, greedy=True)
    checks = {"ours_greedy_equals_recompute": torch.equal(mixture.sample(x, greedy=True).ids, greedy.ids)}
    drawn = mixture.sample(x, 1, torch.Generator().manual_seed(0))
    reference = full_recompute_mixture_sample(policy, ref, BETA, x, 1, torch.Generator().manual_seed(0))
    checks["ours_seeded_equals_recompute"] = torch.equal(drawn.ids, reference.ids)
    if with_trl:
        encoded = left_padded(tokenizer, texts)
        assert bool(encoded.attention_mask.all()) and torch.equal(encoded.input_ids, x.ids[0])  # same ids, no pad
        for name, cache in (("trl_recompute_greedy_equals_recompute", False),
                            ("trl_cached_flag_greedy_equals_recompute", True)):
            generation = trl_generation_config(tokenizer, size["new_tokens"], sample=False, cache=cache, eos=False)
            with quiet(), torch.no_grad():
                out = trl_mixture(policy.model, ref.model, generation).generate(
                    input_ids=encoded.input_ids, attention_mask=encoded.attention_mask,
                    generation_config=generation)
            checks[name] = torch.equal(out[:, encoded.input_ids.shape[1]:], greedy.ids[0])
    failed = [name for name, ok in checks.items() if not ok and name != "trl_cached_flag_greedy_equals_recompute"]
    if failed:
        raise CheckFailed(f"mixture tokens differ from full recomputation: {failed}")
    return checks


def mixture_section(tokenizer, size: dict, with_trl: bool, log) -> dict:
    """Interleaved timings of one batch (float32): ours, TRL's wrapper recomputing, a plain cached generate."""
    policy, ref = mixture_models(tokenizer, size, timed=True)
    texts = prompt_texts(size["batch"], seed=2)
    x = TextCodec(tokenizer).encode_prompts(texts)
    encoded = left_padded(tokenizer, texts)
    mixture, generator = policy.mixture_sampler(ref, BETA), torch.Generator().manual_seed(0)
    calls = {"ours_mixture": lambda: mixture.sample(x, 1, generator),
             "ours_plain_sample": lambda: policy.sample(x, 1, generator)}
    if with_trl:
        recompute = trl_generation_config(tokenizer, size["new_tokens"], sample=True, cache=False, eos=False)
        cached = trl_generation_config(tokenizer, size["new_tokens"], sample=True, cache=True, eos=False)
        wrapper = trl_mixture(policy.model, ref.model, recompute)
        calls["trl_mixture_recompute"] = lambda: wrapper.generate(
            input_ids=encoded.input_ids, attention_mask=encoded.attention_mask, generation_config=recompute)
        calls["hf_plain_generate"] = lambda: policy.model.generate(
            input_ids=encoded.input_ids, attention_mask=encoded.attention_mask, generation_config=cached)
    times = {name: [] for name in calls}
    names = list(calls)
    with quiet(), torch.no_grad():
        for rep in range(size["mixture_reps"]):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                times[name].append(timed(calls[name]))
    result = {name: {"median_s": median(values), "reps": len(values)} for name, values in times.items()}
    if with_trl:
        result["ratio_vs_trl"] = result["trl_mixture_recompute"]["median_s"] / result["ours_mixture"]["median_s"]
    log("  mixture: " + ", ".join(f"{n} {r['median_s']:.3f} s" for n, r in result.items() if isinstance(r, dict)))
    return result


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class CheckFailed(RuntimeError):
    """A correctness check failed: no timing is reported."""


# ================================================================================================ report
def versions() -> dict:
    import transformers

    found = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import trl

        found["trl"] = trl.__version__
    except ImportError:
        found["trl"] = None
    return found


def machine() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "load_1min_at_start": load, "processor": platform.processor() or platform.machine()}


def print_report(result: dict) -> None:
    size, train, mix = result["settings"], result["trainer"], result["mixture"]
    print(f"## Online IPO, two samples per prompt ({result['parameters']:,}-parameter Llama, batch "
          f"{size['batch']}, ≤ {size['new_tokens']} new tokens, one thread)\n")
    print("| trainer | median step (s) | pairs/s | ours ÷ this |")
    print("|---|---:|---:|---:|")
    ours = train["ours"]["pairs_per_s"]
    labels = {"ours": "ours (`Trainer`, online-ipo)", "trl_best": "TRL OnlineDPOTrainer, ipo, best config",
              "trl_default": "TRL OnlineDPOTrainer, ipo, default config"}
    for name, label in labels.items():
        if name in train:
            row = train[name]
            print(f"| {label} | {row['median_step_s']:.3f} | {row['pairs_per_s']:.1f} | "
                  f"{ours / row['pairs_per_s']:.2f}× |")
    print(f"\n## Geometric-mixture sampling, {size['batch']} prompts × {size['new_tokens']} new tokens, β = {BETA}\n")
    print("| sampler | median (s) | TRL recompute ÷ this |")
    print("|---|---:|---:|")
    trl_time = mix.get("trl_mixture_recompute", {}).get("median_s")
    labels = {"ours_mixture": "ours, two KV caches", "trl_mixture_recompute": "TRL GeometricMixtureWrapper, recompute",
              "hf_plain_generate": "floor: one plain cached `generate` (one model)",
              "ours_plain_sample": "ours, one model (`policy.sample`)"}
    for name, label in labels.items():
        if name in mix:
            ratio = f"{trl_time / mix[name]['median_s']:.2f}×" if trl_time else "—"
            print(f"| {label} | {mix[name]['median_s']:.3f} | {ratio} |")
    if "breakdown" in result:
        print("\n## Where our step's time goes (medians, s)\n")
        for name, value in result["breakdown"].items():
            print(f"- {name}: {value:.3f}")
    print("\n## Checks\n")
    for name, ok in result["checks"].items():
        print(f"- {name}: {ok}")
    if "targets" in result:
        print("\n## Targets\n")
        for name, target in result["targets"].items():
            verdict = "met" if target["met"] else f"MISSED (at {target['ratio'] / target['target']:.0%} of it)"
            print(f"- {name}: {target['ratio']:.2f}× against ≥ {target['target']}×: {verdict}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (the test suite's run)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731  (progress off stdout)
    with_trl = trl_available()
    if not with_trl:
        print("TRL is not installed (pip install -e '.[bench]'): skipping every TRL row; ours and the checks run.")
    tokenizer = char_tokenizer()
    model = llama(tokenizer, size, 0)
    result = {"command": " ".join(["python benchmarks/bench_trl.py", *(argv if argv is not None else sys.argv[1:])]),
              "versions": versions(), "machine": machine(), "settings": dict(size, tau=TAU, beta=BETA, lr=LR),
              "parameters": sum(p.numel() for p in model.parameters())}
    started = time.perf_counter()
    try:
        with one_thread():  # module docstring, "Threads"
            log("checks …")
            result["checks"] = mixture_checks(tokenizer, size, with_trl)
            log("trainers …")
            result["trainer"] = trainer_section(model, tokenizer, size, with_trl, log)
            result["checks"]["trainer_losses_finite"] = True  # trainer_section raises otherwise
            log("mixture …")
            result["mixture"] = mixture_section(tokenizer, size, with_trl, log)
            if with_trl:
                log("breakdown …")
                result["breakdown"] = breakdown_section(model, tokenizer, size, size["mixture_reps"])
    except CheckFailed as error:
        print(f"CHECK FAILED: {error}")
        return 1
    if with_trl:
        result["targets"] = {
            "trainer pairs/s, ours ÷ TRL best": {"ratio": result["trainer"]["ratio_vs_trl_best"],
                                                 "target": TRAINER_TARGET},
            "mixture, TRL recompute ÷ ours": {"ratio": result["mixture"]["ratio_vs_trl"], "target": MIXTURE_TARGET}}
        for target in result["targets"].values():
            target["met"] = target["ratio"] >= target["target"]
    result["seconds"] = time.perf_counter() - started
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
