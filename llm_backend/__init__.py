"""HuggingFace causal language models as policies of the preference-games engine (the ``llm`` extra).

===================  ==========================================================================================
module               what it holds
===================  ==========================================================================================
:mod:`.policy`       :class:`TransformerPolicy` (the ``Policy`` protocol for any ``AutoModelForCausalLM``: text or
                     sequence-game layout, KV-cached sampling, exact enumeration on small games, LoRA snapshots)
:mod:`.sampling`     :class:`TransformerMixture`: the token-level geometric mixture, one KV cache per model
:mod:`.text`         tokenizers built in code (characters, a game's layout) and :class:`~.text.TextCodec`
:mod:`.data`         prompt and preference datasets (TRL's ``prompt`` / ``chosen`` / ``rejected`` columns)
:mod:`.oracles`      reward model, pairwise preference model, Python callable, a game's exact oracle
:mod:`.pairs`        best/worst-of-K tournaments (INPO) and SPPO's K-sample win rate
:mod:`.trainer`      :class:`~.trainer.Trainer`: any algorithm object through the engine's training step
===================  ==========================================================================================

This package imports ``preference_games``, never the other way round (the command line, the top floor, imports it
when ``preference-games train`` runs).
"""

from .policy import TransformerPolicy
from .sampling import TransformerMixture, full_recompute_mixture_sample

__all__ = ["TransformerPolicy", "TransformerMixture", "full_recompute_mixture_sample"]
