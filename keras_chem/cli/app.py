"""`kchem`: train, predict, export and browse datasets from the command line."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keras_chem.cli.subelements import subelements_app

app = typer.Typer(
    name="kchem",
    help="keras-chem: property prediction for molecules and crystals (Keras 3, TensorFlow or JAX).",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Browse the dataset registry.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(subelements_app, name="subelements")
out_console = Console()
err_console = Console(stderr=True)


class Backend(str, Enum):
    jax = "jax"
    tensorflow = "tensorflow"


BackendOption = typer.Option(None, "--backend", help="Keras backend; set before Keras is imported.")


def _set_backend(backend: Backend | None) -> None:
    if backend is not None:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend.value:
            raise typer.BadParameter("--backend must be given before Keras is imported")
        os.environ["KERAS_BACKEND"] = backend.value
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@app.callback()
def main_callback(backend: Optional[Backend] = BackendOption) -> None:
    _set_backend(backend)


def _fail(message: str, code: int = 2) -> None:
    err_console.print("[bold red]error:[/] " + escape(message))
    raise typer.Exit(code)


def _extra_model_options(args: list[str]) -> dict:
    """`--embed-dim 64 --positional --no-per-task` → {"embed_dim": "64", "positional": True, "per_task": False}."""
    options, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            _fail(f"unexpected argument {arg!r}")
        key = arg[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            options[key] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[key] = args[i + 1]
            i += 1
        elif key.startswith("no_"):
            options[key[3:]] = False
        else:
            options[key] = True
        i += 1
    return options


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model family, e.g. elembert."),
    dataset: Optional[str] = typer.Option(None, help="Dataset name (see `kchem datasets list`)."),
    split: Optional[str] = typer.Option(None, help="random | stratified | scaffold | matbench (default: the dataset card's)."),
    folds: Optional[int] = typer.Option(None, help="K-fold cross-validation: every row is tested once (default 5)."),
    replicates: Optional[int] = typer.Option(None, help="R independent train/val/test splits instead of folds."),
    split_sizes: Optional[tuple[float, float, float]] = typer.Option(None, help="Train/val/test fractions (default 0.8 0.1 0.1)."),
    splits_file: Optional[Path] = typer.Option(None, help="JSON list of {train,val,test} row indices (chemprop format)."),
    seed: Optional[int] = typer.Option(None, help="Seed for splits, initialisation and shuffling (default 0)."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (early stopping on validation loss)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N rows (smoke runs)."),
    config: Optional[Path] = typer.Option(None, help="TOML file with these options; flags override it."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/<model>-<dataset>). Re-running resumes."),
    only_fold: Optional[list[str]] = typer.Option(
        None, "--only-fold", help="Train only these folds (repeatable, or a list: 0,3,5-7) into the run directory."
    ),
    devices: Optional[str] = typer.Option(None, help="Train each fold data-parallel over N local devices, or 'all'."),
    backend: Optional[Backend] = BackendOption,
) -> None:
    """Train MODEL with k-fold cross-validation (or replicates) and write a run directory.

    Model options are passed as extra flags, e.g. [bold]--embed-dim 64 --layers 4[/].
    """
    _set_backend(backend)
    from keras_chem.data.fetch import DataFileError
    from keras_chem.training import config as run_config
    from keras_chem.training.distribute import parse_devices
    from keras_chem.training.runner import FoldsFailed, RunConfigMismatch, run

    try:
        file_options = run_config.read_toml(config) if config else {}
        cli_options = {
            "dataset": dataset, "split": split, "folds": folds, "replicates": replicates,
            "split_sizes": split_sizes, "splits_file": str(splits_file) if splits_file else None,
            "seed": seed, "epochs": epochs, "batch_size": batch_size, "limit": limit,
            "out": str(out) if out else None, "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
            **_extra_model_options(ctx.args),
        }
        resolved = run_config.resolve(model, file_options, cli_options)
        summary = run(resolved, only_folds=_fold_list(only_fold), devices=parse_devices(devices))
    except FoldsFailed as error:
        _fail(str(error), code=1)
    except (KeyError, ValueError, FileNotFoundError, DataFileError, RunConfigMismatch) as error:
        _fail(str(error).strip("'\""))
    if summary is not None:
        _print_summary(summary, resolved.out)


def _fold_list(values: list[str] | None) -> list[int] | None:
    """`["0", "3,5-7"]` → [0, 3, 5, 6, 7]."""
    if not values:
        return None
    folds = []
    for part in ",".join(values).split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(p) for p in part.split("-", 1))
                folds += range(first, last + 1)
            elif part:
                folds.append(int(part))
        except ValueError:
            _fail(f"--only-fold takes fold numbers and ranges like 0,3,5-7, not {part!r}")
    return sorted(set(folds))


@app.command()
def summarize(run_dir: Path = typer.Argument(..., help="A run directory (finished or not).")) -> None:
    """Write summary.json, report.md and the pictures from the folds finished so far (marked partial if any is missing)."""
    from keras_chem.training.summary import summarize as summarize_run

    if not (run_dir / "splits.json").exists():
        _fail(f"{run_dir} is not a keras-chem run directory (no splits.json)")
    summary = summarize_run(run_dir)
    _print_summary(summary, str(run_dir))


HEADLINE_METRICS = ("roc_auc", "pr_auc", "pooled_onehot_auc", "accuracy", "balanced_accuracy", "mae", "rmse", "r2")


def _print_summary(summary: dict, out: str) -> None:
    partial = "" if summary.get("complete", True) else f", partial: folds {', '.join(summary['missing_folds'])} missing"
    table = Table(title=f"{summary['model']} on {summary['dataset']} ({summary['n_splits']} splits{partial})")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for name, value in summary["metrics"].items():
        if name in HEADLINE_METRICS:
            table.add_row(name, f"{value['mean']:.4f} ± {value['std']:.4f}")
    out_console.print(table)
    out_console.print(f"results: {out}/summary.json, {out}/report.md")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pretrain(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model family with a pretraining objective (e.g. elembert, roost), or crysatom."),
    datasets: Optional[str] = typer.Option(None, help="Comma-separated dataset names whose inputs (not labels) are used "
                                                      "(default: the objective's corpus, if it has one)."),
    strategy: Optional[str] = typer.Option(None, help="Pretraining objective (default: the model's first; elembert: mlm)."),
    out: Optional[Path] = typer.Option(None, help="Output directory (default runs/pretrain-<model>)."),
    seed: int = typer.Option(0, help="Seed for masking, splits and initialisation."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (early stopping on validation loss)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N rows of each dataset."),
    exclude_dataset: Optional[list[str]] = typer.Option(
        None, "--exclude-dataset", help="Leave out every input of this dataset (a benchmark to test on later); repeatable or comma-separated."
    ),
    copy_to: Optional[Path] = typer.Option(None, help="Also copy what the objective produces (e.g. crysatom's atom vectors) "
                                                      "here, with a line in MANIFEST.jsonl beside it."),
    backend: Optional[Backend] = BackendOption,
) -> None:
    """Self-supervised pretraining of MODEL's encoder on the inputs (each once) of --datasets; fine-tune with `train --init OUT`."""
    _set_backend(backend)
    from keras_chem.data.fetch import DataFileError
    from keras_chem.models.registry import PRETRAINING_ALIASES, get_model_family
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.pretrain import pretrain as run_pretraining

    try:
        if model in PRETRAINING_ALIASES:
            alias = model
            model, aliased_strategy = PRETRAINING_ALIASES[alias]
            if strategy not in (None, aliased_strategy):
                _fail(f"`kchem pretrain {alias}` is `kchem pretrain {model} --strategy {aliased_strategy}`, not --strategy {strategy}")
            strategy = aliased_strategy
        family = get_model_family(model)
        if not family.pretraining:
            _fail(f"model {model!r} has no pretraining objective")
        strategy = strategy or next(iter(family.pretraining))
        objective = family.pretraining.get(strategy)
        options = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, **_extra_model_options(ctx.args)}.items() if v is not None}
        config = resolve_model_config(family, {**(objective.defaults if objective else {}), **options})
        out = out or Path("runs") / f"pretrain-{model}"
        names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else list(getattr(objective, "default_datasets", ()))
        if not names:
            _fail(f"name the pretraining datasets with --datasets (objective {strategy!r} has no default corpus)")
        shipped = objective and (objective.element_vectors or objective.encoder_weights)
        if copy_to and not shipped:
            _fail(f"--copy-to: objective {strategy!r} writes nothing shippable")
        excluded = [d.strip() for value in exclude_dataset or [] for d in value.split(",") if d.strip()]
        info = run_pretraining(family, strategy, names, config, out, seed=seed, limit=limit, exclude=excluded)
    except (KeyError, ValueError, FileNotFoundError, DataFileError) as error:
        _fail(str(error).strip("'\""))
    metric = next((f"{k} {v:.3f}, " for k, v in info.items() if k.startswith("val_") and k != "val_loss"), "")
    out_console.print(
        f"pretrained ({info['objective']}) on {info['n_sequences']} inputs: {metric}validation loss {info['val_loss']:.4f} "
        f"→ {out}; {objective.usage.format(model=model, out=out)}"
    )
    if copy_to:
        from keras_chem.training.artifacts import ship_artifact

        ship_artifact(out / shipped, copy_to, info, command=["kchem", *sys.argv[1:]])
        out_console.print(f"copied {shipped} to {copy_to}, manifest line appended beside it")


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A finished `kchem train` run directory."),
    input: Path = typer.Option(..., "--input", help="CSV (SMILES or formula column), Matbench or CEGANN JSON, a JSON list of "
                               "pymatgen structures, CIF, POSCAR or extxyz; gzipped or not."),
    output: Optional[Path] = typer.Option(None, help="Where to write predictions (default <input>.predictions.csv)."),
    column: Optional[str] = typer.Option(None, help="Input column (default: 'smiles', 'formula', 'composition' or 'structure')."),
    backend: Optional[Backend] = BackendOption,
) -> None:
    """Predict with the averaged fold models: one row per input, in input order, with a reason for rows that cannot be featurized."""
    _set_backend(backend)
    from keras_chem.inference import predict as run_predict
    from keras_chem.io import atomic_write_text
    from keras_chem.structures.input_files import InputFileError

    if not (run_dir / "model_info.json").exists():
        _fail(f"{run_dir} is not a finished run directory (no model_info.json)")
    try:
        frame = run_predict(run_dir, input, column=column)
    except (InputFileError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    output = output or input.with_name(input.name.split(".")[0] + ".predictions.csv")
    atomic_write_text(output, frame.to_csv(index=False))
    n_failed = int((frame["reason"] != "").sum())
    out_console.print(f"{len(frame) - n_failed} predicted, {n_failed} could not be featurized → {output}")


@app.command()
def embed(
    run_dir: Path = typer.Argument(..., help="A finished `kchem train` run directory."),
    input: Path = typer.Option(..., "--input", help="Any file `kchem predict` reads."),
    out: Path = typer.Option(..., "--out", help="The .npz to write: ids, embeddings [n, d], reason, formula."),
    fold: Optional[int] = typer.Option(None, help="One fold model's vectors (default: the mean over the fold models)."),
    column: Optional[str] = typer.Option(None, help="Input column of a CSV (default: 'smiles', 'formula', 'composition' or 'structure')."),
    backend: Optional[Backend] = BackendOption,
) -> None:
    """The learned vector of every input (a pooled crystal, a [CLS] token, a composition), one row per input in input order."""
    _set_backend(backend)
    import numpy as np

    from keras_chem.inference import embed as run_embed
    from keras_chem.io import atomic_save_npz
    from keras_chem.structures.input_files import InputFileError

    if not (run_dir / "model_info.json").exists():
        _fail(f"{run_dir} is not a finished run directory (no model_info.json)")
    try:
        result = run_embed(run_dir, input, column=column, fold=fold)
    except (InputFileError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    atomic_save_npz(out, ids=np.asarray(result["ids"], dtype=str), embeddings=result["embeddings"],
                    reason=np.asarray(result["reason"], dtype=str), formula=np.asarray(result["formula"], dtype=str))
    n_failed = sum(1 for reason in result["reason"] if reason)
    out_console.print(f"{len(result['ids']) - n_failed} embedded ({result['embeddings'].shape[1]}-d), "
                      f"{n_failed} could not be featurized → {out}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A finished `kchem train` run directory."),
    out: Path = typer.Option(..., "--out", help="Directory for the TensorFlow SavedModel."),
    overwrite: bool = typer.Option(False, help="Replace --out even if it holds something other than a previous export."),
    backend: Optional[Backend] = BackendOption,
) -> None:
    """Export the fold-averaged model as a TensorFlow SavedModel (`serve` signature)."""
    _set_backend(backend)
    from keras_chem.export import export_saved_model

    try:
        path = export_saved_model(run_dir, out, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError) as error:  # no finished run; --out holds something else
        _fail(str(error))
    out_console.print(f"SavedModel written to {path}")


@datasets_app.command("list")
def datasets_list() -> None:
    """Name, size, task, targets and local availability of every dataset."""
    from keras_chem.data.fetch import is_available
    from keras_chem.data.registry import list_cards

    rows = []
    for card in list_cards():
        size = sum(f.size or 0 for f in card.files)
        targets = ", ".join(card.targets) if len(card.targets) <= 3 else f"{len(card.targets)} targets"
        rows.append((card.name, card.input, card.task, targets, f"{size / 1e6:.2f} MB", "yes" if is_available(card) else "no"))
    columns = ("name", "input", "task", "targets", "size", "local")
    if not out_console.is_terminal:  # piped: one tab-separated line per dataset, nothing cut
        print("\t".join(columns))
        for row in rows:
            print("\t".join(row))
        return
    table = Table()
    for column in columns:  # names are never cut; the other columns wrap on a narrow terminal
        table.add_column(column, no_wrap=column == "name", min_width=max(len(r[0]) for r in rows) if column == "name" else None)
    for row in rows:
        table.add_row(*row[:-1], "[green]yes[/]" if row[-1] == "yes" else "[red]no[/]")
    out_console.print(table)


@datasets_app.command("info")
def datasets_info(name: str = typer.Argument(..., help="Dataset name.")) -> None:
    """Show a dataset's card."""
    from dataclasses import asdict

    from keras_chem.data.fetch import is_available
    from keras_chem.data.registry import get_card

    try:
        card = get_card(name)
    except KeyError as error:
        _fail(str(error).strip("'\""))
    for key, value in asdict(card).items():
        if key == "files":
            for spec in value:
                out_console.print(f"[bold]file[/]: {spec['path']}  sha256 {spec['sha256']}  {spec.get('size') or '?'} bytes")
                out_console.print(f"      source: {spec['url']}")
        elif value not in (None, "", [], ()):
            out_console.print(f"[bold]{key}[/]: {value}")
    out_console.print(f"[bold]available locally[/]: {'yes' if is_available(card) else 'no'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
