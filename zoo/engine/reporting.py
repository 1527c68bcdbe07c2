"""What a run tells its user: the ``Reporter`` callbacks, a quiet reporter and the console one of ``zoo run``.

The runner and the training loop print nothing themselves (as Lightning's trainer prints through
its callbacks and progress bar): they call a reporter at each step of a run, and the reporter
decides what to say and where. ``progress`` says whether progress bars (data synthesis, feature
extraction, training) are drawn; the bars themselves stay where the work is.

The CLI passes a :class:`ConsoleReporter` (``zoo run``'s lines on stdout, or stderr with
``--json``); the Python API a :class:`QuietReporter` unless ``verbose`` or ``echo`` is given.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Protocol

SKIPPED_SHOWN = 10
"""At most this many skipped clips are named; the rest are counted."""

Say = Callable[[str], None]


class Reporter(Protocol):
    """Callbacks of one training invocation, in the order they come.

    ``on_recipe`` (when a recipe name was given), ``on_data`` (once the data are prepared),
    ``on_device``, then per seed ``on_transfer`` (with a transfer source) and ``on_model``, then
    ``on_seed_end``; ``on_run_end`` with the whole result. ``on_warning`` may come at any time
    (something went wrong without failing the run); ``on_note`` says something worth knowing.
    """

    progress: bool
    """Whether progress bars are drawn."""

    def on_recipe(self, recipe: Any) -> None: ...

    def on_data(self, prepared: Any) -> None: ...

    def on_device(self, device: str) -> None: ...

    def on_transfer(self, source: Any, tensors: int) -> None: ...

    def on_model(self, composition: str, seed: int, parameters: int) -> None: ...

    def on_seed_end(self, result: Any) -> None: ...

    def on_run_end(self, result: Any) -> None: ...

    def on_warning(self, message: str) -> None: ...

    def on_note(self, message: str) -> None: ...


class QuietReporter:
    """Says nothing; warnings become Python ``UserWarning``s. ``progress``: draw the bars all the same."""

    def __init__(self, *, progress: bool = False):
        self.progress = progress

    def on_recipe(self, recipe: Any) -> None:
        pass

    def on_data(self, prepared: Any) -> None:
        pass

    def on_device(self, device: str) -> None:
        pass

    def on_transfer(self, source: Any, tensors: int) -> None:
        pass

    def on_model(self, composition: str, seed: int, parameters: int) -> None:
        pass

    def on_seed_end(self, result: Any) -> None:
        pass

    def on_run_end(self, result: Any) -> None:
        pass

    def on_warning(self, message: str) -> None:
        warnings.warn(message, UserWarning, stacklevel=3)

    def on_note(self, message: str) -> None:
        pass


def _stdout(line: str) -> None:
    print(line, flush=True)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ConsoleReporter:
    """``zoo run``'s lines, each handed to ``say`` (default: print to stdout; ``to_stderr`` when stdout
    carries JSON): the recipe, data, clips, skipped clips, device, transfer, model, then the test
    results, the recipe's lab reference and where the reports and models are."""

    def __init__(self, say: Say | None = None, *, progress: bool = True, to_stderr: bool = False):
        self.say = say or (_stderr if to_stderr else _stdout)
        self.progress = progress
        self.recipe: Any = None

    def on_recipe(self, recipe: Any) -> None:
        self.recipe = recipe
        self.say(f"recipe {recipe.name}: {recipe.spec}" + (f" ({recipe.summary})" if recipe.summary else ""))

    def on_data(self, prepared: Any) -> None:
        c = {s: int((prepared.splits == s).sum()) for s in ("train", "val", "test")}
        self.say(f"data: {prepared.description}")
        self.say(f"clips: {len(prepared)} (train {c['train']}, val {c['val']}, test {c['test']}); "
                 f"{prepared.rate} rate, {prepared.n_bins} bins"
                 + (f"; {len(prepared.classes)} classes" if prepared.classes else ""))
        if getattr(prepared, "features_from", ""):
            self.say(f"features: {prepared.features_from}")
        if prepared.skipped:
            self.say(f"skipped {len(prepared.skipped)} clip(s) (--skip-bad); listed in reports/skipped.txt:")
            for item, reason in prepared.skipped[:SKIPPED_SHOWN]:
                self.say(f"  {item}: {reason}")
            if len(prepared.skipped) > SKIPPED_SHOWN:
                self.say(f"  ... and {len(prepared.skipped) - SKIPPED_SHOWN} more")

    def on_device(self, device: str) -> None:
        self.say(f"device: {device}")

    def on_transfer(self, source: Any, tensors: int) -> None:
        self.say(f"transfer: backbone from {source.label} ({source.spec}), {tensors} tensors; freeze {source.freeze}")

    def on_model(self, composition: str, seed: int, parameters: int) -> None:
        self.say(f"model: {composition} (seed {seed}), {parameters:,} trainable parameters")

    def on_seed_end(self, result: Any) -> None:
        pass  # the results are shown together at the end

    def on_run_end(self, result: Any) -> None:
        if result.overfit is not None:
            self._overfit(result.overfit)
        elif len(result.results) == 1:
            self._seed(result)
        else:
            self._seeds(result)
        if self.recipe is not None and result.overfit is None:
            self._reference(self.recipe, result)
        r = result.results[0]
        one = len(result.results) == 1
        self.say(f"\nreports: {r.folder / 'reports'}" if one else f"\nreports: {result.folder}/seed*/reports")
        if r.model_dir:
            self.say(f"model:   {r.model_dir}" if one else f"models:  {result.folder}/seed*/model")

    def on_warning(self, message: str) -> None:
        self.say(f"warning: {message}")

    def on_note(self, message: str) -> None:
        self.say(message)

    def _overfit(self, o: dict) -> None:
        if o["reached"]:
            self.say(f"\noverfit check PASSED: loss {o['first_loss']:.4f} -> {o['final_loss']:.4g} < "
                     f"{o['threshold']:g} after {o['epochs']} epochs on {o['batches']} batch(es) ({o['clips']} clips)")
        else:
            self.say(f"\noverfit check FAILED: loss {o['first_loss']:.4f} -> {o['final_loss']:.4g}, still >= "
                     f"{o['threshold']:g} after {o['epochs']} epochs on {o['batches']} batch(es); a healthy model "
                     f"and pipeline fit a few batches almost perfectly: check the labels, the lr (--lr), the model "
                     f"size, or allow more epochs (--set train.overfit_epochs=...)")

    def _seed(self, res: Any) -> None:
        from .reports import format_metrics
        r = res.results[0]
        self.say(f"\ntest results ({res.data['counts']['test']} clips, best epoch {r.best_epoch} of {len(r.history)}):")
        nested: dict = {}
        for key, value in r.test.items():
            task, metric = key.split(".", 1)
            nested.setdefault(task, {})[metric] = value
        self.say(format_metrics(nested))
        if r.report_text:
            self.say("\n" + r.report_text.rstrip())

    def _seeds(self, res: Any) -> None:
        from .intervals import plus_minus
        self.say(f"\ntest results over {len(res.results)} seeds {res.seeds} (mean ± 95% t-interval half-width):")
        # TASK.METRIC only: a multi-label task's per-tag values are in each seed's report
        shown = {k: s for k, s in res.summary.items() if k.count(".") == 1}
        width = max(len(k) for k in shown) if shown else 0
        for key, s in shown.items():
            self.say(f"  {key:<{width}}  {plus_minus(s, 4)}")

    def _reference(self, recipe: Any, res: Any) -> None:
        refs = recipe.references()
        if not refs:
            return
        self.say(f"\nlab reference for {recipe.name} ({recipe.summary}):")
        for task, values in refs.items():
            parts = []
            for metric, ref in values.items():
                got = res.test.get(f"{task}.{metric}")
                parts.append(f"{metric} {ref}" + (f" (here {got:.3f})" if got is not None else ""))
            self.say(f"  {task}: " + ", ".join(parts))


__all__ = ["Reporter", "QuietReporter", "ConsoleReporter", "SKIPPED_SHOWN"]
