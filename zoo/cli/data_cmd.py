"""``zoo data stats`` (what a data set holds), ``zoo data pack`` (its features packed ahead of a run)
and ``zoo show`` (spectrograms of one clip or file)."""
from __future__ import annotations

from pathlib import Path

from ..config import parse_assignments
from ..data.layout import DEFAULT as DEFAULT_DATA
from ..data.prepare import MAX_SECONDS
from ..errors import ConfigError, DataError, ZooError
from ..protocols import Drawable, ReadsLab, SelectsClips
from .argtypes import POSITIVE, SEED, number


def register(sub) -> None:
    data = sub.add_parser("data", help="inspect a data set (zoo data stats)",
                          description="Inspect a data set in any layout the zoo reads (see `zoo list dataset`).")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    stats = data_sub.add_parser(
        "stats", help="clips per class (before / after the class mapping), splits, lengths; histogram PNG",
        description="Count the clips per class, before and after the class mapping (the Kaggle set), per "
                    "split, with length and target statistics; draw the class histogram as a PNG.")
    _data_args(stats)
    stats.add_argument("--rate", choices=("frames", "beats"), default="frames",
                       help="which clips to count: the frame-rate or the beat-synced ones (default: frames)")
    stats.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                       help="folder for the histogram PNG (default: the current folder)")
    stats.set_defaults(func=run_stats)
    pack = data_sub.add_parser(
        "pack", help="prepare the feature pack of SPEC for a data set ahead of a run (e.g. for a cluster job)",
        description="Extract SPEC's features for every clip of --data and write them into the workspace's "
                    "cache as one pack of checksummed shards, without holding them all in memory; a later "
                    "`zoo run SPEC` with the same data, features, --limit, --seed and --max-seconds starts from "
                    "it without extracting. Prints where the pack is, its clips, shards and bytes.")
    pack.add_argument("spec", metavar="SPEC", help="the composition whose features to pack, e.g. cnn+mel:genre")
    pack.add_argument("--data", default=None, metavar="PATH",
                      help="data folder, or `embedded` (the default: the set the zoo synthesises), as zoo run --data")
    pack.add_argument("--layout", default=None, metavar="NAME", help="the layout of --data, when detection is not wanted")
    pack.add_argument("--set", dest="sets", action="append", default=[], metavar="SCOPE.KEY=VALUE",
                      help="a data set or feature setting, as zoo run takes them: dataset.mapping=none, "
                           "mel.n_mels=64 (repeatable)")
    pack.add_argument("--limit", type=POSITIVE, metavar="N", help="at most N clips (stratified), as zoo run --limit")
    pack.add_argument("--seed", type=SEED, default=0, help="the data seed, as zoo run --seed (default 0)")
    pack.add_argument("--max-seconds", type=number(0.0), metavar="S",
                      help=f"cut longer audio to its middle S seconds, as zoo run (default {MAX_SECONDS:g}; 0 = no limit)")
    pack.add_argument("--skip-bad", action="store_true", help="skip unreadable clips (listed) instead of stopping")
    pack.add_argument("--workers", type=POSITIVE, metavar="N", help="processes for feature extraction (default: all cores)")
    pack.add_argument("--shard-size", default="256MiB", metavar="BYTES",
                      help="most bytes of one checksummed shard (default 256MiB; 64MB, 1GiB, ...)")
    pack.add_argument("--no-progress", action="store_true", help="no progress bars")
    pack.set_defaults(func=run_pack)
    data.set_defaults(func=lambda args, registry, workspace: (data.print_help(), 0)[1])

    show = sub.add_parser(
        "show", help="the drawable features of an audio file or a clip (mel spectrogram, chromagram), full and beat-synced",
        description="Draw every installed feature that declares how it is drawn (a picture: e.g. the mel "
                    "spectrogram and the chromagram, full and beat-synced side by side) for FILE_OR_ID, and print "
                    "their shapes. FILE_OR_ID is an audio file (features computed with the "
                    "installed feature plugins), a lab .npy array, or the id of a clip of --data (for the "
                    "Kaggle set, e.g. 1042 or genre/1042: the full and beat arrays are read; for the embedded "
                    "set, embedded:blues-0030 or blues-0030 --data embedded: only that clip is synthesised).")
    show.add_argument("item", metavar="FILE_OR_ID")
    _data_args(show, "the data folder FILE_OR_ID is a clip of, or `embedded` (needed for a clip id); its layout is "
                     "detected")
    show.add_argument("--out", type=Path, default=None, metavar="PNG",
                      help="the PNG to write (default: show-<name>.png in the current folder)")
    show.set_defaults(func=run_show)


def _data_args(p, data_help: str = "data folder, or `embedded` (the default: the set the zoo synthesises); its "
                                   "layout is detected") -> None:
    p.add_argument("--data", default=None, metavar="PATH", help=data_help)
    p.add_argument("--layout", default=None, metavar="NAME", help="the layout of --data, when detection is not wanted")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="dataset.KEY=VALUE",
                   help="a data set setting, e.g. dataset.mapping=none (repeatable)")


def _settings(items) -> dict:
    scoped = parse_assignments(items)
    other = [s for s in scoped if s != "dataset"]
    if other:
        raise ConfigError(f"--set {other[0]}.…: here only dataset settings apply (--set dataset.KEY=VALUE)")
    return scoped.get("dataset", {})


def _open(args, registry, workspace):
    from ..data.layout import open_dataset

    return open_dataset(args.data, layout=args.layout, registry=registry, settings=_settings(args.sets),
                        data_dir=workspace.data_dir)


def run_pack(args, registry, workspace) -> int:
    from ..data.preparedset import parse_budget
    from ..engine.request import DataRequest
    from ..engine.runner import load_data
    from ..engine.trainconfig import split_settings
    from ..model.building import build_components
    from ..spec import parse_spec

    components, train, dataset = split_settings(parse_assignments(args.sets))
    if train:
        raise ConfigError("--set train.…: zoo data pack prepares data only; give training settings to zoo run")
    try:
        shard = parse_budget(args.shard_size)
    except ValueError:
        shard = None
    if shard is None:
        raise ConfigError(f"--shard-size {args.shard_size!r}: give bytes such as 256MiB, 64MB or 1GiB")
    built = build_components(parse_spec(args.spec, registry), registry, components)
    data = DataRequest(path=args.data, layout=args.layout, settings=dataset, limit=args.limit, skip_bad=args.skip_bad,
                       workers=args.workers, max_seconds=MAX_SECONDS if args.max_seconds is None else args.max_seconds)
    # A budget of one byte: every clip goes to the pack as it is extracted, and none is held.
    prepared = load_data(built, registry, data, seed=args.seed, workspace=workspace, progress=not args.no_progress,
                         memory_budget=1, shard_bytes=shard)
    from ..data.pack import pack_summary
    info = pack_summary(prepared.x.path)
    print(f"data:   {prepared.description}")
    print(f"pack:   {info['path']}")
    print(f"clips:  {info['clips']} ({built.rate} rate, {info['n_bins']} bins)"
          + (f"; {len(prepared.skipped)} skipped (--skip-bad)" if prepared.skipped else ""))
    print(f"shards: {info['shards']} of at most {_size(info['shard_bytes'])}, each with its crc32")
    print(f"bytes:  {info['bytes']:,} ({_size(info['bytes'])})")
    print(f"a later `zoo run {args.spec}` with the same --data, --limit, --seed and --max-seconds reads it "
          f"(same ZOO_HOME, or this cache folder copied: {workspace.cache_dir})")
    return 0


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def run_stats(args, registry, workspace) -> int:
    from ..fsio import refuse_missing_root
    refuse_missing_root(args.out, "zoo data stats --out", "give --out a folder that exists")
    from ..data.plots import class_histogram
    from ..data.datastats import compute_stats, format_stats

    dataset = _open(args, registry, workspace)
    stats = compute_stats(dataset, args.rate)
    print(format_stats(stats))
    if stats.after or stats.before:
        png = class_histogram(stats, Path(args.out) / f"{dataset.name}-classes.png")
        print(f"\nclass histogram: {png.resolve()}")
    return 0


# -- zoo show ------------------------------------------------------------------------------
def _drawable(registry) -> dict:
    """Every installed feature that says how it is drawn (zoo.protocols.Drawable), built with its
    default settings, by name; one that does not build is left out (``zoo list`` says why)."""
    out = {}
    for name in registry.names("feature"):
        try:
            feature = registry.create("feature", name)
        except ZooError:
            continue
        if isinstance(feature, Drawable):
            out[name] = feature
    if not out:
        raise ConfigError("zoo show draws the installed features that say how they are drawn (a `picture`, "
                          "zoo.protocols.Drawable); none of `zoo list feature` does: install a feature plugin "
                          "that has one")
    return out


def _rows(features: dict) -> list[tuple[str, list[str]]]:
    """``(frame-rate feature, its beat-synced versions)`` by name, one row of pictures each."""
    twins: dict[str, list[str]] = {}
    for name, f in sorted(features.items()):
        if f.picture.beat_of:
            twins.setdefault(f.picture.beat_of, []).append(name)
    return [(name, twins.get(name, [])) for name in sorted(features) if not features[name].picture.beat_of]


def _from_lab(features: dict, clip_frames, clip_beats) -> dict:
    """Arrays by feature name from a lab array (and its beat-folder twin): each feature's ``from_lab``."""
    from ..data.labarray import load_lab_array

    fused = {"frames": load_lab_array(clip_frames.array),
             "beats": load_lab_array(clip_beats.array) if clip_beats is not None else None}
    return {name: f.from_lab(fused[f.rate]) for name, f in features.items()
            if fused.get(f.rate) is not None and not (isinstance(f, ReadsLab) and not f.reads_lab)}


def _from_audio(path: Path, features: dict) -> tuple[dict, dict]:
    """Arrays by feature name, and each feature's axes (sample rate, hop length, frequency range)."""
    from ..data.audio import load_audio

    out, axes, waves = {}, {}, {}
    for name, feature in features.items():
        sr = int(feature.sample_rate)
        if sr not in waves:
            waves[sr] = load_audio(path, sr)
        out[name] = feature.from_audio(waves[sr], sr)
        axes[name] = {"sr": sr, "hop_length": int(feature.hop_length), "fmin": feature.picture.fmin,
                      "fmax": feature.picture.fmax}
    return out, axes


def _find(clips, item: str):
    exact = [c for c in clips if c.id == item]
    return exact[0] if exact else next((c for c in clips if c.id.rsplit("/", 1)[-1] == item), None)


def _beat_twin(path: Path):
    """The Kaggle beat-folder twin of a frame-rate lab array, if the set is laid out as downloaded."""
    from ..data.readers.kaggle.files import clip_id

    part = path.parent.parent
    twin_dir = part.with_name(part.name + "_beat") / path.parent.name
    if not twin_dir.is_dir():
        return None
    cid = clip_id(path.name)
    for name in (f"{cid}.fused.full.npy", f"{cid}.fused.full.npy.gz"):
        if (twin_dir / name).is_file():
            return twin_dir / name
    return None


def _arrays_for(args, features: dict, workspace, registry) -> tuple[dict, dict, str, str]:
    """``(arrays by feature name, their axis settings by feature name, title, output stem)`` for
    FILE_OR_ID (no axis settings for lab arrays, whose frame rate the files do not record)."""
    from ..protocols import Clip

    path = Path(args.item)
    named, _, clip = args.item.partition(":")
    if not path.exists() and clip and named == DEFAULT_DATA:
        if args.data not in (None, DEFAULT_DATA):
            raise DataError(f"{args.item} names a clip of the {DEFAULT_DATA} set, but --data is {args.data}; "
                            f"drop --data, or give the clip id alone")
        args.data, args.item = DEFAULT_DATA, clip
    if path.is_file():
        if path.name.endswith((".npy", ".npy.gz")):
            twin = _beat_twin(path)
            arrays = _from_lab(features, Clip(id=path.name, array=path), Clip(id="", array=twin) if twin else None)
            return arrays, {}, str(path), path.name.split(".")[0]
        return (*_from_audio(path, features), str(path), path.stem)
    if args.data is None and not args.layout:
        raise DataError(f"{args.item} is not a file; to show a clip by id, give the data set with --data PATH")
    dataset = _open(args, registry, workspace)
    if isinstance(dataset, SelectsClips):
        dataset.only([args.item])  # the embedded set renders this one clip, not the whole set
    frames = _find(dataset.clips("frames"), args.item)
    if frames is None:
        raise DataError(f"no clip {args.item!r} in {dataset.describe()}; give a clip id of that set or a file path")
    try:
        beats = _find(dataset.clips("beats"), frames.id)
    except DataError:
        beats = None  # e.g. a Kaggle download without its _beat folders: show the full arrays only
    title = f"{frames.id}" + (f" ({frames.label})" if frames.label else "")
    stem = frames.id.replace("/", "-")
    if frames.array is not None:
        return _from_lab(features, frames, beats), {}, title, stem
    return (*_from_audio(Path(frames.audio), features), title, stem)


def run_show(args, registry, workspace) -> int:
    if args.out:
        from ..fsio import refuse_missing_root
        refuse_missing_root(args.out, "zoo show --out", "give --out a file in a folder that exists")
    from ..data.plots import Panel, spectrogram_panels

    features = _drawable(registry)
    arrays, axes, title, stem = _arrays_for(args, features, workspace, registry)
    rows = _rows(features)
    panels = [Panel(features[name].picture.title, arrays[name], features[name].picture.scale,
                    beats=features[name].rate == "beats", **axes.get(name, {}))
              for full, twins in rows for name in [full, *twins] if name in arrays]
    for full, twins in rows:
        if full not in arrays:
            continue
        a = arrays[full]
        line = f"{full} {a.shape[0]} x {a.shape[1]}"
        for beat in (t for t in twins if t in arrays):
            b = arrays[beat]
            line += f" -> beat {b.shape[0]} x {b.shape[1]} ({b.shape[1] / a.shape[1]:.1%} of the frames)"
        if twins and not any(t in arrays for t in twins):
            line += " (no beat-synced version found)"
        print(line)
    out = args.out or Path(f"show-{stem}.png")
    png = spectrogram_panels(panels, out, title=title)
    print(f"wrote {png.resolve()}")
    return 0
