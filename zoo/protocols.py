"""The contracts between the core and its plugins: Feature, Backbone, Task, Head, Dataset and their specs.

A plugin never needs to inherit from anything here: the protocols are structural. What a plugin
*does* register is one :class:`ComponentSpec` per entry point. Everything the engine expects of a
plugin is written here; :mod:`zoo.testing` checks it.

Shapes used throughout::

    feature output        np.ndarray [F, T]   float32, F = n_bins, T frames or beats
    backbone input  x     Tensor [B, F, T]    float32, zero-padded along T
                    lengths Tensor [B]        int64, true lengths (<= T)
    backbone output       Tensor [B, D]       pooled embedding, or
                          Tensor [B, T', D]   a sequence, with its lengths Tensor [B]
    head output           Tensor [B, C]       C = LabelSchema.out_dim ([B] when a head squeezes C = 1)
    head embedding        Tensor [B, D']      the layer before the output layer

Optional members: a component without them still works; the zoo uses them when present, each
read through an ``isinstance`` check on the runtime-checkable Protocol named here (never a member
looked up by a name string), and :mod:`zoo.testing` checks each.

- a head's ``embed(out)`` (:class:`EmbeddingHead`): ``zoo embed`` and ``ZooModel.embed`` need it;
- a backbone's ``named_blocks()`` (:class:`DeclaresBlocks`): its blocks for ``freeze: N``, which
  the engine otherwise guesses from its children;
- a backbone's ``fixed_pool``, ``standardise`` and ``set_standardisation`` (:class:`FixedStatistics`):
  its output is a fixed function of the input apart from a per-dimension standardisation, so the
  engine fits linear heads on it to convergence (``zoo.engine.linearfit``) instead of running SGD;
- a backbone config's ``train_defaults`` class attribute (:class:`RecommendsTraining`);
- a backbone config's ``head_defaults`` class attribute (:class:`RecommendsHead`);
- a backbone config's ``input_bins`` class attribute (:class:`FixedInputBins`): the one feature
  width it takes (a pretrained network's own front end, e.g. musicnn's 96 bands);
- a backbone config's ``freeze`` field (:class:`FreezesItself`): the backbone freezes its first
  N blocks itself;
- a backbone config's ``cpu_bf16`` (a class attribute, or a property of its settings) and
  ``channels_last`` class attribute (:class:`FastInBf16`, :class:`ChannelsLast`): measured
  speed-ups the engine's precision choice reads;
- any config's ``former_defaults`` class attribute (:class:`RemembersDefaults`);
- a config's ``resolved()``, what the files it names decide (:class:`FindsItsFiles`);
- a feature's ``reads_lab`` attribute (:class:`ReadsLab`): False says ``from_lab`` cannot derive it
  from the lab's arrays (it raises a ``ZooError`` saying so; e.g. a raw waveform); without it, True;
- a feature's ``standardise`` attribute (:class:`KeepsScale`): False says its values already have
  the scale a model expects (a pretrained model's own front end): the engine then does not
  standardise its bins with the training split's statistics; without it, True;
- a feature's ``min_samples`` (:class:`NeedsSamples`): the shortest audio it takes;
- a feature's ``from_audio_batch`` and ``batch_size`` (:class:`BatchesAudio`): many clips in one call,
  which the extractor then uses instead of ``from_audio`` per clip;
- a feature's ``picture`` (:class:`Drawable`): how ``zoo show`` draws it (a :class:`Picture`);
- a classification task's ``classes`` and ``map_label`` (:class:`OwnsClasses`): classes of its own;
- a task's ``higher_is_better`` (:class:`DeclaresMetrics`): each metric's direction, the one source of it;
- any component object's ``config`` (:class:`HasConfig`): the dataclass it was built from;
- a multi-label task's ``threshold`` (:class:`HasThreshold`);
- a data set's ``progress`` (:class:`ShowsProgress`), ``restrict`` (:class:`Restricts`), ``only``
  (:class:`SelectsClips`) and ``mapping_report`` (:class:`MapsLabels`).

Per-run state never lives on a plugin object: the engine passes it as arguments (the loss weights
of ``train.balance`` as ``Task.loss(output, y, weight)``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

API_VERSION = 1
"""Version of these contracts. A spec built for another major version is refused at load time."""

KINDS = ("feature", "backbone", "task", "dataset")
TASK_KINDS = ("classification", "regression", "multilabel")
"""What a task predicts: a label (one class per clip), a target value, or several tags per clip."""
Kind = Literal["feature", "backbone", "task", "dataset"]
Rate = Literal["frames", "beats"]


@dataclass(frozen=True)
class NoConfig:
    """Config for a component that has no settings."""


@dataclass(frozen=True)
class ComponentSpec:
    """What a plugin registers under one entry point.

    ``config`` is a frozen dataclass type whose fields all have defaults; ``build`` turns an
    instance of it (plus the kind's extra arguments, see :func:`zoo.registry.Registry.create`)
    into the component:

    - feature:  ``build(config) -> Feature``
    - backbone: ``build(config, n_bins: int) -> Backbone`` (a ``torch.nn.Module``)
    - task:     ``build(config) -> Task``
    - dataset:  ``build(config, root: pathlib.Path) -> Dataset``

    ``variants`` names cheap variants of the component without an entry point of their own: each
    name maps to a subclass of ``config`` whose defaults differ (a wider CNN); its first docstring
    line is the variant's summary, and ``build`` builds it as it builds the component itself
    (:meth:`zoo.registry.Registry.variants`).
    """

    kind: str
    name: str
    build: Callable[..., Any]
    summary: str
    config: type = NoConfig
    api_version: int = API_VERSION
    detect: Callable[[Any], bool] | None = None
    """Datasets only: ``detect(root) -> bool`` says whether a folder is in this layout (cheap)."""
    variants: Mapping[str, type] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"spec kind must be one of {KINDS}, got {self.kind!r}")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"spec {self.name!r}: config must be a dataclass type")


class BackboneOutput(NamedTuple):
    """What a backbone returns: an embedding ``[B, D]`` or a sequence ``[B, T', D]`` + lengths."""

    hidden: Any
    lengths: Any = None


@runtime_checkable
class Feature(Protocol):
    """Turns audio (or the lab's precomputed arrays) into one ``[F, T]`` float32 array.

    Attributes: ``name``; ``n_bins`` (F); ``rate`` ("frames" or "beats"); ``sample_rate`` the
    audio must have; ``hop_length`` in samples (the frame step, also for beat features).
    """

    name: str
    n_bins: int
    rate: str
    sample_rate: int
    hop_length: int

    def settings(self) -> Mapping[str, Any]:
        """Every setting that changes the output (keys the on-disk cache)."""

    def from_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y``: mono waveform ``[N]`` at ``sr`` Hz -> ``[n_bins, T]`` float32."""

    def from_lab(self, fused: np.ndarray) -> np.ndarray:
        """The lab's fused array ``[140, T]`` (rows 0-127 mel dB, 128-139 chroma) -> ``[n_bins, T]``."""


@runtime_checkable
class Backbone(Protocol):
    """A ``torch.nn.Module``: ``forward(x[B,F,T], lengths[B]) -> BackboneOutput``.

    ``out_dim`` is D. Backbones never move themselves to a device and never log.
    """

    out_dim: int

    def forward(self, x: Any, lengths: Any) -> BackboneOutput: ...


@runtime_checkable
class DeclaresBlocks(Protocol):
    """Optional for a backbone: it names its blocks, so ``freeze: N`` fixes exactly the first N.

    ``named_blocks() -> list[tuple[str, list[nn.Module | nn.Parameter]]]``: one ``(name, members)``
    pair per block, in input-to-output order (the first block meets the input). A member module
    brings all its parameters, and its batch norms keep their running statistics when frozen; a
    member parameter brings itself (e.g. one layer's weights of a stacked ``nn.LSTM``, or a
    position embedding, which joins the block it feeds). Members are the backbone's own; no
    parameter may be in two blocks. Blocks need not cover every parameter. The name appears in
    messages ("has 3 blocks (blocks.0, blocks.1, blocks.2)"). A backbone without this member has
    its blocks guessed from its children (:func:`zoo.engine.freezing.guess_blocks`).
    """

    def named_blocks(self) -> list[tuple[str, list[Any]]]: ...


@runtime_checkable
class FixedStatistics(Protocol):
    """Optional for a backbone: apart from a per-dimension standardisation, its output is a fixed,
    non-learned function of its input, so linear heads on it are a convex problem the engine solves
    to convergence instead of running SGD (``zoo.engine.linearfit``; ``train.linear_fit=sgd`` opts out).

    - ``fixed_pool(x: Tensor[B, F, T], lengths: Tensor[B]) -> Tensor[B, D]``: the pooled statistics,
      float32, deterministic, with no learned weights and no dependence on train/eval mode; each
      clip's row depends on that clip's first ``lengths[b]`` steps only;
    - ``standardise(z: Tensor[B, D]) -> Tensor[B, D]``: the rest of the backbone, so that in eval
      mode ``forward(x, lengths).hidden == standardise(fixed_pool(x, lengths))``;
    - ``set_standardisation(mean: Tensor[D], var: Tensor[D]) -> None``: the training set's mean and
      (population) variance of ``fixed_pool``, float64; afterwards ``standardise(z)`` is
      ``(z - mean) / sqrt(var)`` (a standard scaler fitted on the training set; a dimension of
      variance 0 is only centred) or, for a backbone configured not to standardise, ``z`` itself.

    The engine calls ``set_standardisation`` unless some backbone weight is frozen (a transfer's
    ``freeze``), in which case the backbone keeps the standardisation it has.
    """

    def fixed_pool(self, x: Any, lengths: Any) -> Any: ...

    def standardise(self, z: Any) -> Any: ...

    def set_standardisation(self, mean: Any, var: Any) -> None: ...


@runtime_checkable
class RecommendsTraining(Protocol):
    """Optional for a backbone's config dataclass: the training settings it recommends.

    ``train_defaults`` is a ``ClassVar`` mapping (a class attribute, not a dataclass field) of
    ``zoo.engine.trainconfig.TrainConfig`` field names to values, e.g. ``{"epochs": 12,
    "patience": 4}`` for a model that is slow on a CPU. They sit above ``TrainConfig``'s defaults
    and below a recipe's ``train``, ``--set train.*`` and flags. An unknown key is an error.
    """

    train_defaults: ClassVar[Mapping[str, Any]]


@runtime_checkable
class RecommendsHead(Protocol):
    """Optional for a backbone's config dataclass: the task-head settings it recommends.

    ``head_defaults`` is a ``ClassVar`` mapping of task config fields to values, e.g.
    ``{"pooling": "meanstd"}``. Each task takes the keys its config has (a task without such a
    field is left alone), below a recipe's and ``--set``'s ``task.*`` and ``TASK.*``.
    """

    head_defaults: ClassVar[Mapping[str, Any]]


@runtime_checkable
class FixedInputBins(Protocol):
    """Optional for a backbone's config dataclass: ``input_bins``, the only feature width it takes.

    A ``ClassVar[int]`` (e.g. 96 for a network pretrained on 96 mel bands). The backbone still
    refuses any other width itself, with an error naming the feature to use; the attribute lets
    ``zoo.testing`` and tools build it at a width it accepts without guessing.
    """

    input_bins: ClassVar[int]


@runtime_checkable
class FreezesItself(Protocol):
    """Optional for a backbone's config dataclass: a ``freeze: int = 0`` field.

    The backbone keeps its first ``freeze`` blocks fixed itself when built (0: it trains all of
    them); with :class:`DeclaresBlocks` these are its first ``freeze`` declared blocks. A
    transfer with ``freeze: N`` sets this field to N rather than freezing blocks from outside
    (it is the one backbone setting that may differ from the transfer source's).
    """

    freeze: int


@runtime_checkable
class FastInBf16(Protocol):
    """Optional for a backbone's config dataclass: ``cpu_bf16 = True`` says bf16 autocast trains
    it faster than float32 on a CPU with native bf16 (AVX-512 BF16 or AMX), as measured by
    ``bench/precision.py``, and that its default recipe's test score in bf16 over 3 seeds lies in
    float32's interval. ``train.precision=auto`` then trains it in bf16 on such a CPU; without the
    attribute (or False) it stays float32 there. On a GPU ``auto`` is mixed precision for all.

    A class attribute, or a property where the answer depends on the settings (the LSTM's: true
    with its conv front end); the engine reads it from the config made with the run's settings.
    """

    @property
    def cpu_bf16(self) -> bool: ...


@runtime_checkable
class ChannelsLast(Protocol):
    """Optional for a backbone's config dataclass: ``channels_last = True`` says its 2-D
    convolutions run faster with ``torch.channels_last`` weights (NHWC), as measured by
    ``bench/precision.py``; the engine then places the model in that memory format."""

    channels_last: ClassVar[bool]


@runtime_checkable
class RemembersDefaults(Protocol):
    """Optional for any component's config dataclass: ``former_defaults``, a ``ClassVar`` mapping of
    config fields to the value that behaves as the component did before the field existed (e.g. the
    LSTM's ``{"conv_layers": 0}``). A packaged model whose recorded settings lack such a field is
    rebuilt (and transferred from) with this value, not today's default
    (:func:`zoo.config.with_former_defaults`). Every key must be a field of the config.
    """

    former_defaults: ClassVar[Mapping[str, Any]]


@runtime_checkable
class FindsItsFiles(Protocol):
    """Optional for a config dataclass whose meaning depends on files it names (a pretrained checkpoint,
    ``weights``): ``resolved()`` returns the config with what those files decide filled in (the
    checkpoint's architecture, its weights' hash), or raises ConfigError naming the file and the fix.
    Making a config reads nothing and asks no server: the engine calls ``resolved()`` when a run is
    composed and records what it returns (a packaged model is rebuilt from that, without the files),
    and the component's ``build`` calls it, as transformers reads a checkpoint in ``from_pretrained`` only.
    """

    def resolved(self) -> Any: ...


@runtime_checkable
class HasConfig(Protocol):
    """Optional for a component given to ``zoo.compose`` as a ready object: ``config``, the frozen
    dataclass it was built from; the run records its fields as the component's settings (without
    it: none are recorded)."""

    config: Any


@runtime_checkable
class KeepsScale(Protocol):
    """Optional for a feature: ``standardise: bool``. False says its values already have the scale a
    model expects (a pretrained model's own front end): the engine then leaves its bins as they are
    instead of standardising them with the training split's statistics. Without it: True."""

    standardise: bool


@runtime_checkable
class ReadsLab(Protocol):
    """Optional for a feature: ``reads_lab: bool``. False says ``from_lab`` cannot derive it from the
    lab's arrays (it raises a ``ZooError`` saying so; e.g. a raw waveform). Without it: True."""

    reads_lab: bool


@runtime_checkable
class NeedsSamples(Protocol):
    """Optional for a feature: ``min_samples: int``, the fewest samples at ``sample_rate`` it can
    compute one frame from (e.g. its window length). The extractor never puts shorter audio in a
    ``from_audio_batch`` call (:class:`BatchesAudio`): such a clip goes to ``from_audio`` alone, which
    refuses it with a ``DataError``, so one short file does not cost its batch. Without it: 1."""

    min_samples: int


@runtime_checkable
class BatchesAudio(Protocol):
    """Optional for a feature: ``from_audio`` of many clips in one call (e.g. one batched transform
    on a GPU), which :func:`zoo.data.extract.extract_audio` then uses.

    - ``from_audio_batch(ys: Sequence[np.ndarray], sr: int) -> list[np.ndarray]``: ``ys`` are mono
      waveforms ``[N_b]`` at ``sr`` Hz, of any lengths; it returns one ``[n_bins, T_b]`` float32 array
      per clip, in order, each what ``from_audio(ys[b], sr)`` gives (within the feature's numerical
      tolerance). A clip it cannot take raises ``DataError`` as ``from_audio`` does; the extractor then
      computes that call's clips one by one with ``from_audio``, so the failure names its file.
    - ``batch_size: int`` (>= 1): the most clips the extractor should give one call (what fits the
      device's memory; 1 where batching does not pay, e.g. on a CPU: then it calls ``from_audio``).

    Without it, the extractor calls ``from_audio`` once per clip.
    """

    batch_size: int

    def from_audio_batch(self, ys: Sequence[np.ndarray], sr: int) -> list[np.ndarray]: ...


class Picture(NamedTuple):
    """How ``zoo show`` draws a feature's ``[F, T]`` array (:class:`Drawable`).

    ``title``: the panel's title, e.g. "mel spectrogram". ``scale``: what the rows are, which sets
    the y axis: ``"mel"`` (mel bands from ``fmin`` to ``fmax`` Hz, ``fmax`` None: ``sample_rate / 2``;
    values in dB), ``"chroma"`` (12 pitch classes), anything else: plain bins. ``beat_of``: for a
    beat-rate feature, the name of the frame-rate feature it aggregates between beats; ``zoo show``
    draws the two side by side and prints how many beats stand for how many frames.
    """

    title: str
    scale: str
    fmin: float = 0.0
    fmax: float | None = None
    beat_of: str = ""


@runtime_checkable
class Drawable(Protocol):
    """Optional for a feature: ``picture: Picture``, how ``zoo show`` draws it. ``zoo show`` draws every
    installed feature that has it (built with its default settings), time on the x axis from
    ``sample_rate`` and ``hop_length``; a feature without it is not drawn."""

    picture: Picture


@runtime_checkable
class HasThreshold(Protocol):
    """Optional for a multi-label task: ``threshold: float``, the value at which ``encode`` turns a tag
    on; messages about tags that are never (or always) on name it."""

    threshold: float


@runtime_checkable
class ShowsProgress(Protocol):
    """Optional for a data set: a ``progress: bool`` attribute the zoo sets to False when it runs
    quietly (``--no-progress``), before the first ``clips`` call, so the data set draws no bars."""

    progress: bool


@runtime_checkable
class Restricts(Protocol):
    """Optional for a data set that makes its clips on demand (the embedded set synthesises them):
    ``restrict(limit: int | None, seed: int) -> None`` is called before ``clips`` with ``--limit`` and
    the data seed, so it need only make the clips that limit keeps (the zoo's stratified selection,
    :func:`zoo.data.splits.limit`); None: all of them. ``clips`` must still list every clip it would
    otherwise, or those the selection keeps."""

    def restrict(self, limit: int | None, seed: int) -> None: ...


@runtime_checkable
class SelectsClips(Protocol):
    """Optional for a data set: ``only(ids: Sequence[str]) -> None`` makes the next ``clips`` list (and
    make) only those clips (``zoo show ID``); an id it does not have is a ``DataError``."""

    def only(self, ids: Sequence[str]) -> None: ...


@runtime_checkable
class MapsLabels(Protocol):
    """Optional for a data set whose reader maps its source labels onto classes (the lab's Kaggle
    mapping): ``mapping_report(rate) -> report`` with ``before`` (clips per source label), ``after``
    (clips per class) and ``dropped`` (clips per source label the mapping leaves out), each a
    ``collections.Counter``; ``zoo data stats`` shows it."""

    def mapping_report(self, rate: str) -> Any: ...


@dataclass(frozen=True)
class LabelSchema:
    """What a task predicts: class names for a classification, tag names for a multi-label task,
    the target name for a regression."""

    task: str
    kind: Literal["classification", "regression", "multilabel"]
    classes: tuple[str, ...] = ()
    target: str = ""

    @property
    def out_dim(self) -> int:
        return len(self.classes) if self.kind in ("classification", "multilabel") else 1


@runtime_checkable
class Task(Protocol):
    """A head and its objective: pooling, output layer, loss, metrics and label schema.

    ``kind`` is "classification" (reads a clip's label), "regression" (reads the target
    column ``target``) or "multilabel" (reads several target columns, one per tag: see
    :class:`MultiLabel`). ``primary_metric`` and ``greater_is_better`` drive early stopping.
    """

    name: str
    kind: str
    target: str
    primary_metric: str
    greater_is_better: bool

    def schema(self, classes: tuple[str, ...]) -> LabelSchema: ...

    def make_head(self, in_dim: int, schema: LabelSchema) -> Head:
        """A :class:`Head` for backbone outputs of width ``in_dim`` (D)."""

    def loss(self, output: Any, y: Any, weight: Any = None) -> Any:
        """The mean loss of the batch's labelled clips (0 for a batch with none).

        ``weight``: what ``train.balance`` gives this run, passed by the engine on every call
        (never set on the task): a classification's per-class weights ``Tensor[C]``, a multi-label
        task's per-tag weights of the positive term ``Tensor[K]``, on the output's device; None:
        unweighted (validation, evaluation, ``train.balance=none``, regression). A task whose
        ``loss`` takes no ``weight`` still trains (deprecated, see :func:`takes_loss_weight`)."""

    def predict(self, output: Any) -> np.ndarray:
        """Head output -> class probabilities ``[B, C]`` or values ``[B]`` (numpy)."""

    def metrics(self, pred: np.ndarray, y: np.ndarray, schema: LabelSchema) -> dict[str, float]: ...


@runtime_checkable
class OwnsClasses(Protocol):
    """Optional for a task of kind "classification": classes of its own instead of the data set's.

    ``classes``: its class names in output order (at least 2, each once), e.g. ``("Rock", "other")``;
    ``map_label(label: str) -> str | None``: the class of a clip whose data-set label is ``label``
    (one of ``classes``), or None to leave such clips out of this task (they count as unlabelled).
    The engine maps every clip's label through it before any feature is computed; the task's
    ``schema`` then gets ``classes``, and class weights, the balanced sampler, reports, confusion
    matrices and ``zoo predict`` use them. Without this member a classification's classes are the
    data set's, in the data set's order.
    """

    classes: tuple[str, ...]

    def map_label(self, label: str) -> str | None: ...


@runtime_checkable
class DeclaresMetrics(Protocol):
    """Optional for a task, and what makes its metrics usable beyond its primary one: ``higher_is_better``,
    a mapping of each metric name ``metrics()`` reports to whether a higher value is better (as
    torchmetrics' ``Metric.higher_is_better``), e.g. ``{"mae": False, "rmse": False}``. A per-tag key
    ``TAG.METRIC`` takes ``METRIC``'s direction. It is the one source of a metric's direction:
    ``train.monitor``, ``zoo sweep --metric``, ``zoo compare`` (its columns, ``--sort``, the baseline
    marks) and seed picking read it (through :func:`metric_direction`); ``zoo compare`` shows only the
    metrics a row's tasks declare. Without it a task declares its ``primary_metric`` alone (with
    ``greater_is_better``).
    """

    higher_is_better: Mapping[str, bool]


def metric_directions(task: Any) -> dict[str, bool]:
    """Every metric ``task`` declares, with whether higher is better: its ``higher_is_better``
    (:class:`DeclaresMetrics`) and its primary metric (``greater_is_better``)."""
    out = {str(k): bool(v) for k, v in task.higher_is_better.items()} if isinstance(task, DeclaresMetrics) else {}
    out[task.primary_metric] = bool(task.greater_is_better)
    return out


def metric_direction(task: Any, metric: str) -> bool | None:
    """Whether a higher ``metric`` (a name ``task.metrics()`` reports; ``TAG.METRIC`` as ``METRIC``)
    is better for ``task``; None when the task does not declare it."""
    declared = metric_directions(task)
    if metric in declared:
        return declared[metric]
    return declared.get(metric.rsplit(".", 1)[-1])


def takes_loss_weight(task: Any) -> bool:
    """Whether ``task.loss`` accepts the ``weight`` argument (a parameter named so, or ``**kwargs``).

    A task written before API 1's ``loss(output, y, weight=None)`` takes ``(output, y)`` only; the
    engine then calls it so, and warns (:class:`FutureWarning`) where ``train.balance`` would weigh it.
    """
    import inspect
    try:
        params = inspect.signature(task.loss).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "weight" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@runtime_checkable
class MultiLabel(Task, Protocol):
    """What a task of kind "multilabel" has besides :class:`Task`: several target columns, one per tag.

    ``columns``: the target columns it was told to read (empty: the data set's ``tag:`` columns);
    ``resolve(available, where)``: the columns of ``available`` (a data set's numeric target names) it
    reads, in output order, or a ``DataError`` naming ``where`` (the data set), the column and the fix;
    ``encode(values[N, K])``: the float32 ``[N, K]`` targets its loss and metrics take (1 on, 0 off,
    NaN missing), e.g. ``values >= threshold``. ``schema(columns)`` gets the resolved columns and
    names the tags in ``classes``; ``predict`` gives per-tag probabilities ``[B, K]``.
    """

    columns: tuple[str, ...]

    def resolve(self, available: Sequence[str], where: str) -> tuple[str, ...]: ...

    def encode(self, values: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Head(Protocol):
    """What :meth:`Task.make_head` returns: a ``torch.nn.Module`` from a backbone output to the task's output.

    ``forward(out: BackboneOutput) -> Tensor[B, C]`` (``C = schema.out_dim``; ``[B]`` is also
    accepted when C = 1), the input of ``Task.loss`` and ``Task.predict``. ``out`` is pooled
    ``[B, D]`` or a sequence ``[B, T', D]`` with lengths: the head pools a sequence and must not
    read steps past each length.
    """

    def forward(self, out: BackboneOutput) -> Any: ...


@runtime_checkable
class EmbeddingHead(Head, Protocol):
    """Optional for a head: ``embed(out: BackboneOutput) -> Tensor[B, D']``, the layer before its output layer.

    ``ZooModel.embed`` and ``zoo embed`` read it (a head without it cannot give embeddings).
    A head that also has ``output(z)``, its output layer, must satisfy
    ``forward(out) == output(embed(out))``: the zoo's own heads do.
    """

    def embed(self, out: BackboneOutput) -> Any: ...


@dataclass(frozen=True)
class Clip:
    """One item of a data set: where its data is, its split, its label and targets.

    Exactly one of ``audio`` (a file to decode) and ``array`` (a lab ``[140, T]`` .npy/.npy.gz)
    is set. ``split`` is "train", "val", "test" or None (the zoo then assigns one).
    """

    id: str
    split: str | None = None
    label: str | None = None
    targets: Mapping[str, float] = field(default_factory=dict)
    audio: Any = None
    array: Any = None


@runtime_checkable
class Dataset(Protocol):
    """A labelled collection of clips in one layout (embedded, Kaggle, FMA, audio folder)."""

    name: str

    def clips(self, rate: str) -> list[Clip]:
        """The clips whose data suits features of ``rate`` ("frames" or "beats")."""

    def describe(self) -> str:
        """One line: layout, root and size, for logs and errors."""
