"""Python API for this plugin's checkpoints, as fairseq models have it (``from_pretrained`` + a hub interface).

::

    from iterref_fairseq import from_pretrained

    nat = from_pretrained("checkpoints/bible_nat", data_name_or_path="data/bible/bin")
    nat.translate("Im Anfang war das Wort.")                 # raw German in, detokenized English out
    nat.translate(["...", "..."], iter_decode_max_iter=4)    # fairseq's generation options as keywords
    mt = from_pretrained("checkpoints/bible_masked", "checkpoint_last.pt", "data/bible/bin")
    mt.translate("...", beam=1, decoding_strategy="easy-first", decoding_budget="L")

What fairseq gives already and is reused unchanged: :func:`fairseq.hub_utils.from_pretrained` (checkpoint
ensemble, argument overrides, ``"."``-relative data paths) and :class:`fairseq.hub_utils.GeneratorHubInterface`
(tokenize -> BPE -> binarize -> ``task.build_generator`` / ``task.inference_step`` -> remove BPE -> detokenize).
Both work with ``translation_refine`` and ``star_graph``/``molecule_strings`` as they are. What this module
adds:

1. task-level decoding options. fairseq's hub copies every keyword into the generation config, but our
   decoding flags (``--decoding-strategy``, ``--stop-criterion``, ``--sampling-steps``, ...) are task options
   (fairseq's generation config is fixed), so ``translate(x, decoding_strategy=...)`` would silently do
   nothing. :class:`IterRefHubInterface` sets them on the task for the duration of the call;
2. a keyword that is neither a generation nor a task decoding option is a ``TypeError`` (fairseq ignores it);
3. BPE/tokenizer defaults for data prepared by this project (see :func:`from_pretrained`);
4. one clear error for a missing model directory, checkpoint or data directory (checked before fairseq reads
   anything) or missing dictionaries;
5. the plugin is registered and its compat shims applied (importing this module imports the package), so
   checkpoints written by fairseq-train load under torch >= 2.6; ``user_dir`` is never needed.

The model classes expose the same loader as fairseq's: ``RefinementNATModel.from_pretrained(...)``.
"""
import contextlib
import dataclasses
import json
import logging
import os
from typing import Any, Dict, FrozenSet, Iterator, List, Optional

import torch
from fairseq import hub_utils
from omegaconf import open_dict

logger = logging.getLogger(__name__)

BPE_CODES_FILE = "bpe.codes"  # written by iterref-prepare-bible and scripts/prepare_parallel.py
PREPARE_SUMMARY_FILE = "prepare.json"

# Task options that decode with the reference target, which raw input does not have.
_NEEDS_REFERENCE = {"oracle_length": "decodes with the reference target length"}


def _task_name(task) -> Optional[str]:
    from fairseq.tasks import TASK_REGISTRY

    return next((name for name, cls in TASK_REGISTRY.items() if cls is type(task)), None)


def task_decoding_options(task) -> FrozenSet[str]:
    """Names of the task options a hub call may override: the fields a task of this plugin adds to fairseq's
    ``TranslationConfig``. The base fields (data, languages, positions, ...) fix what was loaded and stay put."""
    from fairseq.tasks import TASK_DATACLASS_REGISTRY
    from fairseq.tasks.translation import TranslationConfig

    config_cls = TASK_DATACLASS_REGISTRY.get(_task_name(task))
    if config_cls is None or not issubclass(config_cls, TranslationConfig):
        return frozenset()
    base = {f.name for f in dataclasses.fields(TranslationConfig)}
    return frozenset(f.name for f in dataclasses.fields(config_cls) if f.name not in base)


class IterRefHubInterface(hub_utils.GeneratorHubInterface):
    """fairseq's :class:`~fairseq.hub_utils.GeneratorHubInterface` for the plugin's sequence tasks.

    ``translate(sentences, beam=5, verbose=False, **options)`` / ``sample(...)`` take raw text (a string or a list
    of strings) and return detokenized strings (a string for a string); ``generate(tokenized, **options)`` returns
    fairseq's hypothesis dicts (``tokens``, ``score``, ``positional_scores``, and ``steps``/``history`` from our
    generators). ``options`` are fairseq generation options (``iter_decode_max_iter``,
    ``iter_decode_force_max_iter``, ``iter_decode_with_beam``, ``retain_iter_history``, ``sampling_topk``, ...)
    and the task's decoding options (:func:`task_decoding_options`: ``decoding_strategy``, ``decoding_budget``,
    ``stop_criterion``, ``sampling_steps``, ...); each holds for that call only. ``beam`` is K of the masked
    translation model's generator and ignored by ``refinement_nat`` (its length beam is
    ``iter_decode_with_beam``); its default, 5, is fairseq-generate's.
    """

    def __init__(self, cfg, task, models):
        super().__init__(cfg, task, models)
        self.task_options = task_decoding_options(task)

    def generate(self, tokenized_sentences: List[torch.LongTensor], beam: int = 5, verbose: bool = False,
                 skip_invalid_size_inputs: bool = False, inference_step_args: Optional[Dict] = None,
                 prefix_allowed_tokens_fn=None, **kwargs) -> List[List[Dict[str, torch.Tensor]]]:
        task_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in self.task_options}
        unknown = sorted(k for k in kwargs if k not in self.cfg.generation)
        if unknown:
            raise TypeError(
                f"unknown generation option(s) {', '.join(map(repr, unknown))}: pass fairseq generation options "
                f"(e.g. iter_decode_max_iter, iter_decode_with_beam) or this task's decoding options "
                f"({', '.join(sorted(self.task_options)) or 'none'})"
            )
        for key, why in _NEEDS_REFERENCE.items():
            if task_kwargs.get(key):
                raise ValueError(f"{key} {why}; the hub decodes raw input without references: use fairseq-generate "
                                 "on a binarized test set instead")
        with self._task_cfg(task_kwargs):
            return super().generate(tokenized_sentences, beam=beam, verbose=verbose,
                                    skip_invalid_size_inputs=skip_invalid_size_inputs,
                                    inference_step_args=inference_step_args,
                                    prefix_allowed_tokens_fn=prefix_allowed_tokens_fn, **kwargs)

    @contextlib.contextmanager
    def _task_cfg(self, values: Dict[str, Any]) -> Iterator[None]:
        """Task decoding options set for one call (the task builds its generator from ``task.cfg``) and restored
        afterwards, also when decoding fails, so that one call's options never leak into the next."""
        cfg = self.task.cfg
        saved = {k: cfg[k] for k in values}
        try:
            with open_dict(cfg):
                for k, v in values.items():
                    cfg[k] = v  # omegaconf checks the type (e.g. a choice of stop_criterion)
            yield
        finally:
            with open_dict(cfg):
                for k, v in saved.items():
                    cfg[k] = v


def _default_bpe(data_dir: str, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Adds subword-nmt BPE and the Moses tokenizer for a data directory that holds ``bpe.codes``.

    Only settings the caller did not give are filled in (``bpe=None`` / ``tokenizer=None`` switch them off). The
    Moses settings are those of our preparation scripts (sacremoses, ``escape=False``, hyphens split); a
    ``prepare.json`` next to the codes (the data directory or its parent: the scripts binarize into
    ``OUT/bin``) may say that hyphens were kept, or that another tokenizer was used (then none is added).
    """
    codes = os.path.join(data_dir, BPE_CODES_FILE)
    if not os.path.isfile(codes) or "bpe" in overrides:
        return overrides
    out = dict(overrides, bpe="subword_nmt")
    out.setdefault("bpe_codes", codes)
    added = [f"bpe=subword_nmt (bpe_codes={out['bpe_codes']})"]
    if "tokenizer" not in overrides:
        tokenizer = _prepared_tokenizer(data_dir)
        if tokenizer.get("name", "moses") == "moses":
            out["tokenizer"] = "moses"
            out.setdefault("moses_no_escape", not tokenizer.get("escape", False))
            out.setdefault("moses_no_dash_splits", not tokenizer.get("aggressive_dash_splits", True))
            added.append(f"tokenizer=moses (moses_no_escape={out['moses_no_escape']}, "
                         f"moses_no_dash_splits={out['moses_no_dash_splits']})")
    logger.info("found %s: using %s; pass bpe=/tokenizer= to change this", codes, ", ".join(added))
    return out


def _prepared_tokenizer(data_dir: str) -> Dict[str, Any]:
    for directory in (data_dir, os.path.dirname(os.path.abspath(data_dir))):
        path = os.path.join(directory, PREPARE_SUMMARY_FILE)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    tokenizer = json.load(f).get("tokenizer")
            except (OSError, ValueError, AttributeError):
                continue  # not one of ours: keep the defaults
            if isinstance(tokenizer, dict):
                return tokenizer
    return {}


def _resolve_paths(model_dir: str, checkpoint_file: str, data_name_or_path: str):
    """(model_dir, [checkpoint paths], data_dir, hint), absolute; a missing one is a FileNotFoundError naming it
    and the fix (``hint`` says how to point at the data, for the dictionary errors found later)."""
    model_dir = os.path.abspath(os.path.expanduser(str(model_dir)))
    if os.path.isfile(model_dir):
        raise FileNotFoundError(
            f"model_dir must be the directory holding the checkpoint, got the file {model_dir}: use "
            f"from_pretrained({os.path.dirname(model_dir)!r}, checkpoint_file={os.path.basename(model_dir)!r})"
        )
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model directory not found: {model_dir} (pass the --save-dir of fairseq-train)")
    paths = [os.path.join(model_dir, name) for name in str(checkpoint_file).split(os.pathsep)]
    for path in paths:
        if not os.path.isfile(path):
            found = sorted(f for f in os.listdir(model_dir) if f.endswith(".pt"))
            raise FileNotFoundError(
                f"checkpoint not found: {path} (checkpoints in {model_dir}: {', '.join(found) or 'none'}; pass "
                "checkpoint_file=NAME)"
            )
    data = str(data_name_or_path)
    # fairseq's convention: a path starting with "." is relative to the model directory
    data = os.path.join(model_dir, data) if data.startswith(".") else os.path.expanduser(data)
    data = os.path.abspath(data)
    hint = ("pass data_name_or_path=the fairseq-preprocess --destdir the model was trained on (its dict.*.txt); "
            "'.'-relative paths are read from model_dir")
    if not os.path.isdir(data):
        raise FileNotFoundError(f"data directory not found: {data} ({hint})")
    return model_dir, paths, data, hint


def from_pretrained(model_dir: str, checkpoint_file: str = "checkpoint_best.pt", data_name_or_path: str = ".",
                    **overrides) -> torch.nn.Module:
    """Loads a checkpoint written by fairseq-train with this plugin and returns its hub interface.

    Args:
        model_dir: the directory holding the checkpoint (fairseq-train's ``--save-dir``).
        checkpoint_file: file name in ``model_dir``; several joined by ``os.pathsep`` (":") make an ensemble.
        data_name_or_path: the binarized data directory the model was trained on (its dictionaries). As in
            fairseq, a path starting with "." is relative to ``model_dir`` (default: ``model_dir`` itself).
        overrides: fairseq options set on the checkpoint's configuration, as for fairseq's ``from_pretrained``:
            ``tokenizer="moses"``, ``bpe="subword_nmt"``, ``bpe_codes=PATH``, ``moses_no_escape=True``,
            ``source_lang``/``target_lang``, ``batch_size``, ``max_tokens``, task decoding options
            (``decoding_strategy=...``, the defaults of every call) and ``generation_args={...}``.

    BPE and tokenizer: when ``bpe`` is not given and the data directory holds ``bpe.codes`` (the data
    directories of ``iterref-prepare-bible`` / ``examples/refinement_nat/prepare-*.sh``, which copy the codes into
    the binarized directory), subword-nmt BPE with those codes is applied to the input and removed from the
    output ("@@ "), and, unless ``tokenizer`` is given, the input is Moses-tokenized and the output detokenized
    as those scripts did (``--tokenizer moses --moses-no-escape``; their ``prepare.json``, in the data
    directory or its parent, is read for ``--no-dash-splits``). ``bpe=None`` or ``tokenizer=None`` switch this
    off (e.g. for input that is already tokenized and BPE-segmented). Without ``bpe.codes`` the text goes in and
    out as it is, split on spaces, unless ``bpe``/``tokenizer`` are given.

    Returns:
        :class:`IterRefHubInterface` (``translate``, ``sample``, ``generate``, ``encode``, ``decode``; an
        ``nn.Module``: ``.cuda()``, ``.half()``) for ``translation_refine`` (``refinement_nat``,
        ``masked_translation``) and ``star_graph`` / ``molecule_strings`` (``flexmdm``; ``sample(prompts)``);
        :class:`MoleculeHubInterface` (``sample(num_samples)`` -> SMILES) for ``mol_graph``.

    Raises:
        FileNotFoundError: ``model_dir``, a checkpoint or the data directory (or its dictionaries) is missing.
    """
    return _load(model_dir, checkpoint_file, data_name_or_path, overrides)


def _load(model_dir: str, checkpoint_file: str, data_name_or_path: str, overrides: Dict[str, Any],
          expected: Optional[type] = None) -> torch.nn.Module:
    model_dir, paths, data, hint = _resolve_paths(model_dir, checkpoint_file, data_name_or_path)
    overrides = _default_bpe(data, overrides)
    try:
        loaded = hub_utils.from_pretrained(model_dir, str(checkpoint_file), data, **overrides)
    except FileNotFoundError as err:  # e.g. dict.de.txt for a model trained with -s de
        missing = err.filename or str(err)
        raise FileNotFoundError(f"{missing} not found while loading {paths[0]} with data {data} ({hint})") from err
    except Exception as err:  # fairseq raises a bare Exception when no dict.*.txt names the languages
        if "language pair" not in str(err):
            raise
        raise FileNotFoundError(f"no dictionaries (dict.SRC.txt, dict.TGT.txt) in {data} ({hint})") from err
    cfg, task, models = loaded["args"], loaded["task"], loaded["models"]
    if expected is not None and not all(isinstance(m, expected) for m in models):
        raise ValueError(
            f"{paths[0]} holds a {type(models[0]).__name__} model, not a {expected.__name__}: load it with "
            f"{type(models[0]).__name__}.from_pretrained or iterref_fairseq.from_pretrained"
        )
    if _task_name(task) == "mol_graph":
        return MoleculeHubInterface(cfg, task, models)
    return IterRefHubInterface(cfg, task, models)


class MoleculeHubInterface(torch.nn.Module):
    """Hub interface of a masked graph model (task ``mol_graph``): ``sample`` draws molecules with the Gibbs-like
    sampler of thesis §5.3.3 (:func:`iterref_fairseq.generators.graph_gibbs.sample_molecules`, the same code as
    ``iterref-generate-molecules``, so equal arguments and seed give the same molecules)."""

    def __init__(self, cfg, task, models):
        super().__init__()
        self.cfg, self.task = cfg, task
        self.models = torch.nn.ModuleList(models)
        for model in self.models:
            model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.models[0].parameters()).device

    @torch.no_grad()
    def sample(self, num_samples: int = 1, init: str = "train", mask_rate: float = 0.1, steps: int = 400,
               argmax_after_step: Optional[int] = None, batch_size: int = 500, seed: int = 1,
               selection: str = "fraction", with_validity: bool = False) -> List:
        """``num_samples`` SMILES (invalid graphs as ``"INVALID"``; with ``with_validity`` (SMILES, valid)
        pairs). Options as the flags of ``iterref-generate-molecules``: ``init`` "train" | "marginal" (§5.3.3),
        ``mask_rate`` alpha, ``steps`` T, ``selection`` "fraction" | "bernoulli" (``--mask-selection``). The
        training split of the data directory provides the start graphs
        or the marginals."""
        from .generators.graph_gibbs import sample_molecules

        if num_samples < 1 or batch_size < 1 or steps < 0 or not 0.0 < mask_rate <= 1.0:
            raise ValueError("sample needs num_samples >= 1, batch_size >= 1, steps >= 0 and 0 < mask_rate <= 1, "
                             f"got {num_samples}, {batch_size}, {steps}, {mask_rate}")
        if "train" not in self.task.datasets:
            self.task.load_dataset("train")
        marginals = self.task.graph_marginals("train") if init == "marginal" else None
        results, _ = sample_molecules(self.models[0], self.task.vocab, self.task.datasets["train"], marginals,
                                      num_samples, init=init, mask_rate=mask_rate, steps=steps,
                                      argmax_after_step=argmax_after_step, batch_size=batch_size, seed=seed,
                                      device=self.device, selection=selection)
        return results if with_validity else [smiles for smiles, _ in results]


class HubLoadable:
    """Mixin for the plugin's model classes: ``Model.from_pretrained(...)`` is :func:`from_pretrained` and checks
    that the checkpoint holds that model (fairseq's own classmethod would return a hub without the fixes above)."""

    @classmethod
    def from_pretrained(cls, model_dir: str, checkpoint_file: str = "checkpoint_best.pt",
                        data_name_or_path: str = ".", **overrides) -> torch.nn.Module:
        """See :func:`iterref_fairseq.hub.from_pretrained`; a checkpoint of another model class is a ValueError."""
        return _load(model_dir, checkpoint_file, data_name_or_path, overrides, expected=cls)
