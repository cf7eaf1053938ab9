"""Where an attention readout looks: the PMA seeds' attention over the atoms of a few test molecules of a
run whose readout is a Set Transformer (`--pooling abp`), averaged over seeds and heads.

Molecules are drawn by RDKit with the weights as a similarity map (from the SMILES, with the
hydrogens the model saw; for given 3-D coordinates the bonds come from `rdDetermineBonds`); crystals,
and molecules RDKit cannot bond, as their atoms projected on the two main axes, coloured by weight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ATTENTION_PNG = "attention.png"
N_SHOWN = 6


def _rdkit_png(atoms, smiles: str | None, weights: np.ndarray) -> bytes | None:
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdDetermineBonds
    from rdkit.Chem.Draw import SimilarityMaps, rdMolDraw2D

    from keras_chem.structures.molecules import mol_from_smiles

    try:
        if smiles is not None:
            mol, _ = mol_from_smiles(smiles)
        else:
            block = f"{len(atoms)}\n\n" + "\n".join(f"{a.symbol} {x:.6f} {y:.6f} {z:.6f}" for a, (x, y, z) in zip(atoms, atoms.positions))
            mol = Chem.MolFromXYZBlock(block)
            rdDetermineBonds.DetermineConnectivity(mol)
        if mol is None or mol.GetNumAtoms() != len(weights):
            return None
        mol = Chem.Mol(mol)
        AllChem.Compute2DCoords(mol)
        drawer = rdMolDraw2D.MolDraw2DCairo(360, 300)
        SimilarityMaps.GetSimilarityMapFromWeights(mol, [float(w) for w in weights], draw2d=drawer)
        drawer.FinishDrawing()
        return drawer.GetDrawingText()
    except Exception:  # noqa: BLE001 - any RDKit failure falls back to the scatter picture
        return None


def _scatter(ax, atoms, weights: np.ndarray) -> None:
    centred = atoms.positions - atoms.positions.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2] if len(atoms) > 1 else np.eye(3)[:2]
    xy = centred @ axes.T
    ax.scatter(xy[:, 0], xy[:, 1], c=weights, cmap="viridis", s=300, vmin=0, vmax=max(float(weights.max()), 1e-9))
    for (x, y), symbol in zip(xy, atoms.get_chemical_symbols()):
        ax.annotate(symbol, (x, y), ha="center", va="center", fontsize=8, color="white")
    ax.set_aspect("equal")
    ax.axis("off")


def attention_map(run_dir, n_shown: int = N_SHOWN) -> Path | None:
    """Write `attention.png` for the first `n_shown` test rows of the run's first finished fold; None when
    the run's readout is not a Set Transformer."""
    from keras_chem.training.run_files import RunDirectory

    run = RunDirectory(run_dir)
    config = run.config()
    if config.model_config.get("pooling") != "abp":
        return None  # before importing Keras: the runner of any other model never loads it
    import io

    import keras
    import matplotlib.image

    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.registry import family_from_info
    from keras_chem.models.saving import load_model
    from keras_chem.structures.crystals import to_atoms
    from keras_chem.training.plots.figures import _figure, _grid, _save

    fold = next(k for k in run.fold_indices() if run.is_finished(k))
    model = load_model(run.fold(fold) / "model.keras")
    pool = model.get_layer("pool")
    if not hasattr(pool, "attention_scores"):  # a Set Transformer readout
        return None
    test = run.splits()[fold].test[:n_shown]
    rows, data = run.rows(), load_dataset(config.dataset, limit=config.limit)
    position_of = {int(r): i for i, r in enumerate(data.rows)}  # file row → dataset position (a loader may deduplicate)
    inputs = [data.inputs[position_of[int(r)]] for r in rows.file_rows[test]]
    info = run.model_info()
    preprocessor = family_from_info(info).preprocessor_from_config(info["preprocessor"])
    features = preprocessor.transform([str(i) for i in range(len(inputs))], inputs, data.input_kind)
    where = features.kept
    atom_vectors, real = keras.Model(model.inputs, pool.input)(features.arrays)
    scores = np.asarray(keras.ops.convert_to_numpy(pool.attention_scores(atom_vectors, real))).mean(axis=1)
    n_rows, n_cols = _grid(len(where), ncols_max=3)
    fig = _figure(4.0 * n_cols, 3.6 * n_rows)
    for plot, (position, weights) in enumerate(zip(where, scores)):
        ax = fig.add_subplot(n_rows, n_cols, plot + 1)
        atoms = to_atoms(inputs[position]) if data.input_kind == "structure" else None
        n_atoms = int(np.count_nonzero(features.arrays["atom_z"][plot]))
        smiles = inputs[position] if data.input_kind == "smiles" else None
        png = _rdkit_png(atoms, smiles, weights[:n_atoms]) if smiles or not atoms.pbc.any() else None
        if png is not None:
            ax.imshow(matplotlib.image.imread(io.BytesIO(png), format="png"))
            ax.axis("off")
        elif atoms is not None:
            _scatter(ax, atoms, weights[:n_atoms])
        ax.set_title(f"{rows.ids[test[position]]}: max weight {weights[:n_atoms].max():.2f}", fontsize=9)
    fig.suptitle(f"Attention of the readout's seeds over the atoms (test rows of fold {fold})")
    return _save(fig, Path(run_dir) / ATTENTION_PNG)
