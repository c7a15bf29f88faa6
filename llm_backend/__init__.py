"""HuggingFace causal language models as policies of the preference-games engine (the ``llm`` extra).

:class:`TransformerPolicy` is the :class:`~preference_games.protocols.Policy` protocol for any
``AutoModelForCausalLM`` over a :class:`~preference_games.sequences.SequenceGame`'s token layout — trained by the
unchanged algorithms and enumerated exactly on small games; :class:`TransformerMixture` samples the token-level
geometric mixture of two of them, each with its own KV cache. This package imports ``preference_games``, never the
other way round.
"""

from .policy import TransformerPolicy
from .sampling import TransformerMixture, full_recompute_mixture_sample

__all__ = ["TransformerPolicy", "TransformerMixture", "full_recompute_mixture_sample"]
