"""Turns a run's split options into train/val/test splits over the featurized rows."""

from __future__ import annotations

from keras_chem.data.types import Dataset
from keras_chem.training.config import RunConfig

DEFAULT_FOLDS = 5


def make_splits(config: RunConfig, data: Dataset):
    """`(splits, rows left out per split)`: splits as positions into `data`; rows sharing a dedup key
    never straddle partitions. Only a given splits file can name rows that are not in `data`."""
    from keras_chem.data import splits as S
    from keras_chem.data.dedup import dataset_group_keys
    from keras_chem.data.registry import get_card
    from keras_chem.data.scaffolds import bemis_murcko_scaffold
    from keras_chem.data.split_files import read_splits_file
    from keras_chem.training.run_files import file_rows_to_positions

    card = get_card(config.dataset)
    if config.splits_file:
        # rows past --limit (or skipped) may be named: they are left out and counted, not an error
        return file_rows_to_positions(read_splits_file(config.splits_file, None), data.rows)

    method = config.split
    groups = dataset_group_keys(data)
    train_size, val_size, _ = config.split_sizes
    val_fraction = val_size / (train_size + val_size)
    if method == "matbench":
        splits = _first_folds(_matbench(card, data, config.seed, val_fraction, groups), config.folds)
    else:
        labels = S.stratify_labels(data.targets) if method == "stratified" else None
        scaffolds = None
        if method == "scaffold":
            if data.input_kind != "smiles":
                raise ValueError(f"the scaffold split needs SMILES; {data.name} holds {data.input_kind} inputs")
            scaffolds = [bemis_murcko_scaffold(smiles) for smiles in data.inputs]
        if config.replicates:
            splits = S.replicate_splits(
                config.replicates, method=method, seed=config.seed, sizes=config.split_sizes,
                groups=groups, labels=labels, scaffolds=scaffolds,
            )
        else:
            splits = S.kfold_splits(
                config.folds, method=method, seed=config.seed, groups=groups,
                labels=labels, scaffolds=scaffolds, val_fraction=val_fraction,
            )
    return splits, [0] * len(splits)


def _first_folds(folds: list, wanted: int | None) -> list:
    """The first `wanted` of the official Matbench folds (all five by default)."""
    if wanted is None or wanted == len(folds):
        return folds
    if not 1 <= wanted <= len(folds):
        raise ValueError(f"Matbench defines {len(folds)} folds; --folds {wanted} is not one of 1..{len(folds)}")
    return folds[:wanted]


def _matbench(card, data: Dataset, seed: int, val_fraction: float, groups):
    from keras_chem.data.fetch import locate
    from keras_chem.data.matbench_folds import load_matbench_folds, matbench_splits
    from keras_chem.data.registry import get_card

    if not card.matbench_task:
        raise ValueError(f"{card.name} is not a Matbench task; choose another --split")
    folds_card = get_card("matbench_splits")
    folds_file = next(f for f in folds_card.files if "folds" in f.path)
    test_ids = load_matbench_folds(locate(folds_card, folds_file), card.matbench_task)
    return matbench_splits(data.ids, test_ids, seed=seed, val_fraction=val_fraction, groups=groups)
