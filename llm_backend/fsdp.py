"""Sharded training with torch's own FSDP2 (``torch.distributed.fsdp.fully_shard``): every role of the algorithm
sharded across the processes, for a model whose training state (weights, gradients, optimiser moments and the
algorithm's frozen copies) does not fit one device.

:func:`shard` wraps a :class:`~llm_backend.policy.TransformerPolicy`'s model with ``fully_shard`` — each transformer
block (the classes HF lists in the model's ``_no_split_modules``, what accelerate's transformer auto-wrap policy
picks) and then the whole model — so that each of N processes holds 1/N of every parameter, gradient and optimiser
moment. FSDP all-gathers a block's parameters for its forward and backward passes and reduce-scatters the gradients
*averaged* over the processes; the trainer must not average them again (it passes no ``reduce`` hook then).

The algorithm's other roles — π_ref, a previous iterate π_t, a behaviour policy, the EMA, an adversary — are deep
copies (``snapshot()``, ``copy.deepcopy``), and FSDP refuses ``deepcopy``. :class:`ShardedPolicy` gives them a
*sharded* copy instead: the same architecture built on the meta device (no memory), sharded the same way, each
process copying its own shards. Gathering a full copy would be simpler, but every frozen role would then cost a
whole model on every process, which is what FSDP is for avoiding; a sharded copy costs 1/N of one.

Sampling gathers the whole model once for the draw (:func:`gathered`), as TRL and DeepSpeed's ZeRO-3 generation
do. Token-by-token decoding would otherwise all-gather every block at every token, and a process whose responses
all reached EOS stops decoding early, leaving the others waiting in an all-gather it never joins. So a process
holds one full copy of the model while it samples; the optimiser state and gradients stay sharded.

Every process runs every forward pass (FSDP's all-gathers are collectives), so evaluation runs on every process
too; rank 0 alone writes. FSDP2 runs on CPU processes over gloo as well as on GPUs over NCCL (the mesh takes the
policy's device type), which is how tests/test_llm_fsdp.py runs it. A full checkpoint (``save_pretrained``) gathers
the weights on rank 0 (:func:`full_state_dict`); a resumable one pickles each process's own shards
(``ShardedPolicy.__reduce__``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os

import torch
import torch.distributed as dist

from .policy import TransformerPolicy
from .sampling import TransformerMixture


def _skeleton(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose parameters are on the meta device (no memory); buffers and everything else copied."""
    memo = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)


@functools.lru_cache
def _mesh(device_type: str, world: int):
    """The 1-D mesh of all the processes, made once: every copy of a sharded policy (an EMA's, every step) is
    sharded on it, and ``init_device_mesh`` can make a new process group per call (gloo on a machine with CUDA)."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device_type, (world,))


def _fully_shard(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """FSDP2 on each transformer block, then on the whole model (the root holds the embeddings and the head).
    ``reshard_after_forward=True`` everywhere, the root included (FSDP keeps the root gathered by default): a frozen
    role's forward passes happen with no backward after them, and :func:`gathered` switches it off for sampling."""
    from torch.distributed.fsdp import fully_shard

    mesh = _mesh(device.type, dist.get_world_size())
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, reshard_after_forward=True)
    return fully_shard(model, mesh=mesh, reshard_after_forward=True)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a parameter (a DTensor), or a buffer itself (FSDP replicates buffers)."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


# accelerate's FSDP settings (its config file's fsdp_config, passed to the processes as FSDP_* variables) that the
# trainer does not implement, with the values it does: refused when set otherwise, rather than silently ignored
_ACCELERATE_SETTINGS = {"FSDP_VERSION": "2", "FSDP_OFFLOAD_PARAMS": "false", "FSDP_ACTIVATION_CHECKPOINTING": "false",
                        "FSDP_RESHARD_AFTER_FORWARD": "true", "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP"}


def launcher_asks() -> bool:
    """Whether ``accelerate launch`` was given an FSDP config (``distributed_type: FSDP``, e.g.
    configs/accelerate_fsdp.yaml): the trainer then shards as if given ``fsdp=True``. A ValueError names the first
    setting it does not implement."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return False
    for name, supported in _ACCELERATE_SETTINGS.items():
        value = os.environ.get(name, supported)
        if value.lower() != supported.lower():
            raise ValueError(f"accelerate's FSDP config sets {name}={value}; the trainer shards with FSDP2 and "
                             f"supports only {supported} (see configs/accelerate_fsdp.yaml)")
    if os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP"):
        raise ValueError("accelerate's FSDP config sets fsdp_transformer_layer_cls_to_wrap; the trainer shards the "
                         "blocks the model names in _no_split_modules: remove the setting")
    return True


def shard(policy: TransformerPolicy) -> "ShardedPolicy":
    """``policy`` with its model sharded in place by FSDP2 across the processes of the current group (module
    docstring): use the returned policy. Every process must pass the same weights (the trainer broadcasts rank 0's)."""
    if policy.is_lora:
        raise ValueError("FSDP with LoRA is not supported: LoRA's snapshots are adapters inside one model, which "
                         "FSDP cannot copy; train LoRA data-parallel (without FSDP) instead")
    if not dist.is_initialized() or dist.get_world_size() < 2:
        raise ValueError("FSDP shards a model across processes: launch 2 or more with torchrun or accelerate launch")
    if isinstance(policy, ShardedPolicy):
        return policy
    skeleton = _skeleton(policy.model)  # before sharding: FSDP refuses deepcopy afterwards
    settings = policy.settings()
    return ShardedPolicy(_fully_shard(policy.model, policy.device), settings.pop("length"), skeleton=skeleton,
                         **settings)


@contextlib.contextmanager
def gathered(*policies: TransformerPolicy):
    """Within: every sharded model among ``policies`` held whole on each process, forward passes without
    collectives (module docstring: why sampling needs it). Resharded on exit."""
    from torch.distributed.fsdp import FSDPModule

    models = {id(p.model): p.model for p in policies if isinstance(p, ShardedPolicy)}.values()
    units = [module for model in models for module in model.modules() if isinstance(module, FSDPModule)]
    for unit in units:  # unshard and reshard act on one unit each, not on the blocks inside it
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


def full_state_dict(policy: TransformerPolicy) -> dict | None:
    """The model's complete weights on rank 0, on the CPU (None on the other ranks): a collective, every process
    calls it. None for an unsharded policy (its own ``state_dict`` is complete)."""
    if not isinstance(policy, ShardedPolicy):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(policy.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if dist.get_rank() == 0 else None


def _rebuild(skeleton, settings: dict, device: str, flags: dict, shards: list, buffers: list,
             world: int) -> "ShardedPolicy":
    """A pickled :class:`ShardedPolicy` back on the current process group, with this process's saved shards: on as
    many processes as saved them (each holds 1/world of every parameter)."""
    if not dist.is_initialized() or dist.get_world_size() != world:
        raise ValueError(f"this checkpoint holds the FSDP shards of {world} processes: resume it on {world} "
                         "processes with FSDP")
    policy = ShardedPolicy._build(skeleton, settings, torch.device(device))
    with torch.no_grad():
        for target, saved in zip([*policy.model.parameters(), *policy.model.buffers()], [*shards, *buffers]):
            _local(target).copy_(saved)
    return policy._flagged(flags)


class ShardedPolicy(TransformerPolicy):
    """A :class:`TransformerPolicy` whose model FSDP2 shards across the processes (module docstring); made by
    :func:`shard`. ``skeleton``: the unsharded model on the meta device, from which copies are built."""

    def __init__(self, model, length: int, *, skeleton: torch.nn.Module, **settings):
        super().__init__(model, length, **settings)
        # not registered as a submodule: its meta parameters must not count among the policy's
        object.__setattr__(self, "_skeleton_model", skeleton)

    @classmethod
    def _build(cls, skeleton: torch.nn.Module, settings: dict, device: torch.device) -> "ShardedPolicy":
        """A new sharded policy of ``skeleton``'s architecture on ``device``, its memory allocated but not filled."""
        model = _skeleton(skeleton)
        _fully_shard(model, device).to_empty(device=device)
        settings = dict(settings)
        return cls(model, settings.pop("length"), skeleton=skeleton, **settings)

    def _flagged(self, flags: dict) -> "ShardedPolicy":
        """The frozen/adapter/training flags and each parameter's ``requires_grad`` set as in ``flags``."""
        self.frozen, self.adapter = flags["frozen"], flags["adapter"]
        self.train(flags["training"])
        for p, trained in zip(self.model.parameters(), flags["requires_grad"]):
            p.requires_grad_(trained)
        return self

    def _flags(self) -> dict:
        return {"frozen": self.frozen, "adapter": self.adapter, "training": self.training,
                "requires_grad": [p.requires_grad for p in self.model.parameters()]}

    def __deepcopy__(self, memo) -> "ShardedPolicy":
        """A sharded copy (module docstring): each process copies its own shards into a model built from the
        skeleton and sharded the same way. ``snapshot()``, the EMA and the auxiliary models all copy through this."""
        twin = memo[id(self)] = self._build(self._skeleton_model, self.settings(), self.device)
        with torch.no_grad():
            for target, source in zip([*twin.model.parameters(), *twin.model.buffers()],
                                      [*self.model.parameters(), *self.model.buffers()]):
                _local(target).copy_(_local(source))
        return twin._flagged(self._flags())

    def __copy__(self) -> "ShardedPolicy":
        """A shallow copy sharing the model, as for any module (``view()`` is one). Defined because
        :meth:`__reduce__`, which ``copy.copy`` would otherwise call, makes a checkpoint's copy of the shards."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        return twin

    def __reduce__(self):
        """Pickled (``torch.save`` of a checkpoint) as the skeleton, the settings and *this process's* shards: each
        process writes its own file, and loading rebuilds the sharding on the group of the loading process."""
        shards = [_local(p).detach().cpu() for p in self.model.parameters()]
        buffers = [b.detach().cpu() for b in self.model.buffers()]
        return _rebuild, (self._skeleton_model, self.settings(), str(self.device), self._flags(), shards, buffers,
                          dist.get_world_size())

    def sample(self, prompts, n: int = 1, generator=None, *, greedy: bool = False):
        """:meth:`TransformerPolicy.sample` with the model gathered for the whole draw (:func:`gathered`)."""
        with gathered(self):
            return super().sample(prompts, n, generator, greedy=greedy)

    def mixture_sampler(self, other, beta) -> "GatheredMixture":
        """The token-level mixture, drawn with both models gathered (:class:`GatheredMixture`)."""
        return GatheredMixture(self, other, beta)

    def save_pretrained(self, path) -> None:
        """The complete model in HuggingFace format, gathered and written by rank 0 (a collective: every process
        calls it; the others write nothing)."""
        state = full_state_dict(self)
        if dist.get_rank() == 0:
            self.model.save_pretrained(path, state_dict=state)
            self._save_settings(path)


class GatheredMixture(TransformerMixture):
    """:class:`~llm_backend.sampling.TransformerMixture` whose draws hold both models gathered (:func:`gathered`):
    each decodes token by token and stops when every response has ended, as a sharded policy's own draws do."""

    def sample(self, prompts, n: int = 1, generator=None, *, greedy: bool = False):
        with gathered(self.policy, self.other):
            return super().sample(prompts, n, generator, greedy=greedy)
