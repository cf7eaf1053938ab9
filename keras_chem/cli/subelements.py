"""`kchem subelements`: fit the sub-element centroids behind elEmBERT V1 tokens."""

from __future__ import annotations

import hashlib
import os
import shlex
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from keras_chem.featurizers.corpus import DEFAULT_CORPUS
from keras_chem.io import append_manifest_line
from keras_chem.structures.molecules import DEFAULT_SEED

subelements_app = typer.Typer(
    help="Sub-element tokens (elEmBERT V1): fit per-element k-means centroids of atomic PDFs.",
    no_args_is_help=True,
)
_console = Console(stderr=True)


def _command(datasets: list[str], seed: int, limit: int | None, out: Path, conformer_seed: int, max_samples: int) -> str:
    args = ["kchem", "subelements", "fit", "--datasets", ",".join(datasets), "--seed", str(seed)]
    if limit is not None:
        args += ["--limit-per-dataset", str(limit)]
    if conformer_seed != DEFAULT_SEED:
        args += ["--conformer-seed", str(conformer_seed)]
    if max_samples != 20000:
        args += ["--max-samples-per-element", str(max_samples)]
    return shlex.join(args + ["--out", str(out)])


@subelements_app.command("fit")
def fit(
    datasets: str = typer.Option(",".join(DEFAULT_CORPUS), "--datasets", help="Comma-separated dataset names (SMILES or structure inputs)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the k-means and of the per-element subsample."),
    limit_per_dataset: Optional[int] = typer.Option(None, "--limit-per-dataset", min=1, help="Use only the first N rows of each dataset."),
    out: Path = typer.Option(Path("weights/subelements_v1.npz"), "--out", help="Where to write the model (.npz)."),
    conformer_seed: int = typer.Option(DEFAULT_SEED, "--conformer-seed", help="Seed of the RDKit conformers (SMILES datasets)."),
    max_samples_per_element: int = typer.Option(20000, "--max-samples-per-element", min=1, help="k-means sees at most this many PDFs per element."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Manifest to append to (default: MANIFEST.jsonl beside --out)."),
) -> None:
    """Build the PDF corpus of DATASETS, fit k-means per element (k from the paper's Table 3), write the model and a manifest line."""
    import keras_chem
    from keras_chem.featurizers.corpus import build_corpus
    from keras_chem.featurizers.subelements import fit_subelements

    names = [n.strip() for n in datasets.split(",") if n.strip()]
    if not names:
        raise typer.BadParameter("no dataset named", param_hint="--datasets")
    start = time.perf_counter()
    try:
        corpus = build_corpus(names, limit_per_dataset=limit_per_dataset, conformer_seed=conformer_seed)
    except (KeyError, ValueError, FileNotFoundError) as error:
        _console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None
    corpus_seconds = time.perf_counter() - start
    model = fit_subelements(corpus.pdfs, seed=seed, max_samples_per_element=max_samples_per_element)
    command = _command(names, seed, limit_per_dataset, out, conformer_seed, max_samples_per_element)
    model.metadata.update(corpus=corpus.structures, conformer_seed=conformer_seed,
                          limit_per_dataset=limit_per_dataset, command=command)
    model.save(out)
    manifest = manifest or out.parent / "MANIFEST.jsonl"
    entry = {
        "file": os.path.relpath(out.resolve(), manifest.resolve().parent),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "corpus": corpus.structures,
        "skipped": corpus.skipped,
        "n_environments": corpus.n_environments,
        "k": model.k,
        "seed": seed,
        "conformer_seed": conformer_seed,
        "limit_per_dataset": limit_per_dataset,
        "max_samples_per_element": max_samples_per_element,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "keras_chem_version": keras_chem.__version__,
        "seconds": {"corpus": round(corpus_seconds, 1), "total": round(time.perf_counter() - start, 1)},
    }
    append_manifest_line(manifest, entry)
    n_env = sum(corpus.n_environments.values())
    _console.print(
        f"wrote {out} ({len(model.centroids)} elements, {sum(model.k.values())} sub-tokens, "
        f"{sum(corpus.structures.values())} structures, {n_env} atomic environments) "
        f"in {entry['seconds']['total']:.0f} s; manifest line appended to {manifest}"
    )
