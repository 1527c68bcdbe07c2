"""The training hyper-parameters (``TrainConfig``) and how ``--set`` scopes are divided."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Literal, Mapping

from ..bounds import bounded, check_bounds
from ..config import field_check, make_config, option, options
from ..errors import ConfigError, suggest
from ..protocols import RecommendsTraining

ENGINE_SCOPES = ("train", "dataset")
"""Settings scopes the engine consumes itself; every other scope configures a component."""


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. Every field can be set with ``--set train.KEY=VALUE``; those with an
    :class:`~zoo.config.Option` (``--epochs`` ...) are ``zoo run`` options too, checked by :func:`option_check`.

    The defaults are sized so that the default compositions train on the embedded data set on
    a 2-core CPU in a few minutes.
    """

    epochs: int = bounded(30, ge=1, metadata=option("most epochs (train.epochs)", "--epochs"))
    """Most passes over the training split (early stopping may end sooner)."""
    batch_size: int = bounded(32, ge=1, metadata=option("batch size (train.batch_size)", "--batch-size"))
    lr: float = bounded(1e-3, gt=0.0, metadata=option("peak learning rate (train.lr)", "--lr"))
    """Peak learning rate of AdamW."""
    weight_decay: float = bounded(1e-2, ge=0.0)
    """AdamW decoupled weight decay (not applied to biases, norms and task log-variances)."""
    grad_clip: float = bounded(1.0, ge=0.0)
    """Clip the global gradient norm to this value; 0 turns clipping off."""
    schedule: Literal["cosine", "plateau", "none"] = "cosine"
    """cosine: warm-up then cosine decay per step; plateau: halve the lr when the validation
    metric stalls; none: constant."""
    warmup: float = bounded(0.05, ge=0.0, lt=1.0, why="a fraction of all steps")
    """Fraction of all steps spent warming the lr up linearly (cosine schedule only)."""
    patience: int = bounded(8, ge=0, metadata=option("early-stopping patience in epochs, 0 = off (train.patience)",
                                                     "--patience"))
    """Stop after this many epochs without a better primary validation metric; 0: never stop."""
    bucket: bool = False
    """Batch clips of similar length together (less padding); default: uniformly random batches."""
    eval_batch_size: int = bounded(64, ge=1)
    task_weighting: Literal["fixed", "uncertainty"] = "fixed"
    """How the losses of several tasks add up: fixed weights or learned (uncertainty) weights."""
    task_weights: tuple[float | str, ...] = ()
    """Fixed weights: one per task in spec order (``2,1``), or by name (``valence:2``; tasks not
    named keep 1). Default: 1 each."""
    overfit_batches: int = bounded(0, ge=0, metadata=option(
        "sanity check: train on N fixed batches until the loss is near zero, and say if it got there",
        "--overfit-batches", metavar="N"))
    """Sanity check: train on this many fixed batches only, until the loss is below
    ``overfit_loss`` or ``overfit_epochs`` passes; 0: train normally."""
    overfit_loss: float = bounded(0.01, gt=0.0)
    overfit_epochs: int = bounded(300, ge=1)
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata=option(
        "default: cuda when available, else cpu", "--device"))
    """auto: cuda when available, else cpu."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(default="auto", metadata=option(
        "forward passes in this format (train.precision); default auto: bf16 on a GPU with it, and on a CPU with "
        "native bf16 (AVX-512 BF16, AMX) for backbones that declare it (the CNN, the CRNN); else fp32", "--precision"))
    """The forward passes' numeric format (autocast; weights and optimiser stay float32), in training,
    evaluation and ``zoo predict``. auto: on a GPU bf16 where it has it, else fp16 with loss scaling;
    on a CPU bf16 where the processor has native bf16 (AVX-512 BF16 or AMX, read from its flags) and
    the backbone declares a measured speed-up and a checked accuracy (``cpu_bf16``: the CNN and the LSTM with its conv front end), else
    fp32. fp16 is GPU-only."""
    threads: int = bounded(0, ge=0)
    """CPU threads for torch; 0: one per core this process may run on (its CPU affinity)."""
    refresh_steps: int = bounded(10, ge=1)
    """Read the running loss back for the progress bar every this many steps (a device sync)."""
    time_masks: int = bounded(0, ge=0)
    """SpecAugment: time spans masked per training clip (inside its true length); 0: none."""
    time_mask_width: int = bounded(20, ge=0)
    """Widest time mask in frames (at most a fifth of the clip)."""
    freq_masks: int = bounded(0, ge=0)
    """SpecAugment: frequency bands (stacked feature rows) masked per training clip; 0: none."""
    freq_mask_width: int = bounded(8, ge=0)
    """Widest frequency mask in rows."""
    mixup: float = bounded(0.0, ge=0.0)
    """Mixup's Beta(alpha, alpha) parameter (0.2-0.4 is usual); 0: off. Class labels mix through
    the loss, regression targets directly."""
    crop_frames: int = bounded(0, ge=0)
    """Train on one random window of this many frames per clip; validation and test average the
    model's outputs over half-overlapping windows of the same size. 0: whole clips."""
    crops_per_clip: int = bounded(0, ge=0)
    """With ``crop_frames``: every training clip comes this many times per epoch, each time with a
    random window of its own (long real clips hold many more 3 s windows than one per epoch). An
    epoch then has this many times the steps. 0 (auto): 4 where the median training clip holds at
    least 8 windows (about 24 s at 128 frames of hop 512: real 30 s recordings), else 1 (the embedded
    set's 6 s clips). Chosen on real music: on gtzan-mini's 30 s clips the CNN's validation accuracy
    over 3 seeds was 0.750 with one crop, 0.817 with two and 0.900 with four; eight reached 0.950, a
    gain of one clip inside its interval, at twice the steps (docs/results.md). Without ``crop_frames``:
    1 (0 or 1 may be given)."""
    ema_epochs: float = bounded(0.0, ge=0.0)
    """Validate, choose the best epoch and package an exponential moving average of the weights
    spanning about this many epochs (decay per step ``exp(-1 / (ema_epochs * steps per epoch))``),
    while the optimiser trains the live weights; 0: off, the live weights (:mod:`zoo.engine.averaging`).
    Off by default: on gtzan-mini it smoothed the CNN's validation curve but validation and test scored
    below the live weights' (0.867 and 0.733 against 0.900 and 0.800 over 3 seeds, docs/results.md)."""
    balance: Literal["auto", "none", "weights", "sampler"] = "auto"
    """Unbalanced classes: weights: inverse-frequency class weights in the classification losses;
    sampler: batches drawn so that every class of the first classification task is equally likely;
    auto (the default): weights when the model has a classification task, else nothing. On balanced
    classes the weights are all 1, so auto trains exactly as none; on the lab-shaped unbalanced
    embedded set it lifted the baseline's validation macro F1 from 0.60 to 0.68 (docs/results.md).
    A multi-label task takes per-tag weights of its positives (n_off / n_on) with weights only: auto
    leaves it unweighted, so its outputs stay probabilities."""
    monitor: str = ""
    """What model selection and early stopping follow: "" the first task's primary metric, a metric
    of the first task (macro_f1), TASK.METRIC, or loss."""
    linear_fit: Literal["auto", "sgd"] = "auto"
    """auto: a backbone whose output is a fixed function of its input (``FixedStatistics``, e.g. the
    ``stats`` baseline) under linear heads gets its heads fitted to convergence (L2 logistic regression
    by L-BFGS, ridge in closed form, the penalty chosen on validation; ``zoo.engine.linearfit``), and
    the settings of the loop (epochs, lr, batches, augmentation) do not apply; any other model is
    trained by the loop. sgd: the loop always."""
    memory_budget: str = "auto"
    """Bytes the prepared features and the padded splits may take in memory (256MB, 2GiB); data
    bigger than that is streamed from the pack on disk (docs/scale.md). auto (or 0): a quarter of
    RAM, half the free GPU memory for a split on the GPU."""

    def __post_init__(self) -> None:
        # Checked when the config is made (parse time), so a bad value fails in one line before any
        # data work, instead of deep in the loop (or, worse, training silently for one epoch). The ranges
        # are the fields' declared bounds, which the command-line options check too (zoo.config.options).
        check_bounds(self, "train", fix=_how)
        if self.crops_per_clip > 1 and self.crop_frames == 0:
            raise ValueError(f"crops_per_clip {self.crops_per_clip}: needs crop_frames > 0 (the copies of a clip "
                             f"would be identical); set --set train.crop_frames=128 or drop crops_per_clip")
        from ..data.preparedset import parse_budget
        parse_budget(self.memory_budget)


def _how(name: str) -> str:
    declared = options(TrainConfig).get(name)
    flag = declared.flag if declared else None
    return f"set it with {flag} or --set train.{name}=..." if flag else f"set it with --set train.{name}=..."


def option_check(name: str) -> Callable[[Any], Any] | None:
    """The check of ``train.NAME`` given as an option (``--epochs 0`` refused at parse time): the field's
    declared bounds (:func:`zoo.config.field_check`), read as a whole number or a number by its type; None
    for a field without bounds."""
    return field_check(TrainConfig, name)


LONG_CLIP_WINDOWS = 8
"""``crops_per_clip`` auto: clips whose median length holds this many crop windows get :data:`LONG_CLIP_CROPS`."""
LONG_CLIP_CROPS = 4
"""``crops_per_clip`` auto: the crops a long clip gives an epoch (validation on gtzan-mini chose 4 over 2 and 1;
8 gained one clip, inside its interval, at twice the steps)."""


def crops_per_clip(config: TrainConfig, lengths: Any) -> int:
    """How many random crops each training clip gives per epoch: ``config.crops_per_clip``, or for 0
    (auto) :data:`LONG_CLIP_CROPS` when the median of the training clips' ``lengths`` holds at least
    :data:`LONG_CLIP_WINDOWS` windows of ``crop_frames``, else 1; always 1 without crops."""
    if config.crop_frames <= 0:
        return 1
    if config.crops_per_clip > 0:
        return config.crops_per_clip
    import numpy as np
    median = float(np.median(np.asarray(lengths))) if len(lengths) else 0.0
    return LONG_CLIP_CROPS if median >= LONG_CLIP_WINDOWS * config.crop_frames else 1


def train_config(*layers: Mapping[str, Any] | None) -> TrainConfig:
    """A ``TrainConfig`` from override mappings, later ones winning (recipe, --set, flags)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in (layer or {}).items() if v is not None})
    return make_config(TrainConfig, _renamed(merged), where="train")


def _renamed(values: dict[str, Any]) -> dict[str, Any]:
    """``amp`` (before ``precision``): true is ``precision: auto``, false ``precision: fp32``; said once."""
    if "amp" not in values:
        return values
    import warnings
    from ..config import flag
    values = dict(values)
    amp = flag(values.pop("amp"))
    values.setdefault("precision", "auto" if amp else "fp32")
    warnings.warn(f"train.amp is now train.precision: amp={amp} reads as precision={values['precision']}; "
                  f"write --set train.precision={values['precision']}", FutureWarning, stacklevel=3)
    return values


def with_overrides(config: TrainConfig, **values: Any) -> TrainConfig:
    """``config`` with the non-None ``values`` replaced (typed like ``--set``)."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return config
    given = _renamed(given)
    checked = make_config(TrainConfig, given, where="train")
    return replace(config, **{k: getattr(checked, k) for k in given})


def backbone_defaults(registry: Any, backbone: str) -> dict[str, Any]:
    """The training settings a backbone recommends: ``train_defaults``, an optional class attribute
    (a ``ClassVar`` mapping, not a field) of its config dataclass, e.g. fewer epochs for a model that
    is slow on a CPU. They sit above ``TrainConfig``'s defaults and below recipes, ``--set`` and flags."""
    config_cls = registry.load("backbone", backbone).config
    defaults = dict(config_cls.train_defaults) if isinstance(config_cls, RecommendsTraining) else {}
    make_config(TrainConfig, defaults, where=f"train_defaults of backbone '{backbone}'")  # fail early, naming it
    return defaults


def split_settings(settings: Mapping[str, Mapping[str, Any]] | None) -> tuple[dict, dict, dict]:
    """Divide ``{scope: {key: value}}`` into (component settings, train, dataset)."""
    settings = {k: dict(v) for k, v in (settings or {}).items()}
    train = settings.pop("train", {})
    dataset = settings.pop("dataset", {})
    return settings, train, dataset


def task_weight_map(tasks: Iterable[str], weights: tuple[float | str, ...]) -> dict[str, float] | None:
    """``train.task_weights`` as ``{task: weight}``: one weight per task in spec order, or
    ``NAME:WEIGHT`` items (tasks not named keep 1); None when not given."""
    names = list(tasks)
    if not weights:
        return None
    named = [w for w in weights if isinstance(w, str) and ":" in w]
    if named and len(named) != len(weights):
        raise ConfigError(
            f"train.task_weights {list(weights)}: give either one weight per task in spec order, or NAME:WEIGHT "
            f"items (e.g. {names[-1]}:0.5), not both"
        )
    if named:
        out = dict.fromkeys(names, 1.0)
        for item in named:
            name, _, value = item.partition(":")
            name = name.strip()
            if name not in out:
                raise ConfigError(f"train.task_weights names task '{name}', but the spec's tasks are {names}"
                                  f"{suggest(name, names)}")
            try:
                out[name] = float(value)
            except ValueError:
                raise ConfigError(f"train.task_weights item {item!r}: '{value}' is not a number") from None
        return out
    if len(weights) != len(names):
        raise ConfigError(
            f"train.task_weights has {len(weights)} value(s) {list(weights)} but the spec has {len(names)} "
            f"task(s) {names}; give one weight per task in spec order, e.g. --set train.task_weights="
            + ",".join("1" for _ in names) + f", or name them: {names[-1]}:0.5"
        )
    try:
        return dict(zip(names, (float(w) for w in weights)))
    except ValueError:
        raise ConfigError(f"train.task_weights {list(weights)}: each weight must be a number, or NAME:WEIGHT") from None
