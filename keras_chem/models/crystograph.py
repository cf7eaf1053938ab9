"""CrysToGraph: eTGC graph convolutions on a crystal graph and its line graph, then a
graph-wise transformer (GwT), on padded neighbour tensors.

Paper: `crystograph.md`; what the original code does: `specs/reference-implementations.md` §A.
Forward pass as in §A.6; defaults from the paper's Table A1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_chem.featurizers.cgcnn_elements import MAX_Z
from keras_chem.featurizers.element_tables import check_element_features
from keras_chem.featurizers.positional import LAP_PE_DIM, RW_PE_DIM
from keras_chem.featurizers.progress import map_rows
from keras_chem.models.base import Features, ModelFamily, PaddedPreprocessor, TaskInfo

N_POSITIONAL = LAP_PE_DIM + RW_PE_DIM  # Laplacian eigenvectors + random-walk return probabilities

DEFAULTS = {
    "k": 12,
    "start_radius": 8.0,
    "radius_step": 2.0,
    "max_atoms": None,
    "hidden": 256,
    "heads": 8,
    "d_k": 32,
    "conv_layers": 3,
    "line_graph": True,
    "line_d_k": 24,
    "line_heads": 8,
    "gwt_layers": 1,
    "gwt_attention": "softmax",
    "positional": True,
    "atom_features": "cgcnn92",  # the frozen element table (featurizers/element_tables.py), or "learned"
    "element_embedding": 64,  # width of a learned vector per element beside the table (0: none)
    "fc_layers": 2,
    "dropout": 0.0,
}
TRAINING_DEFAULTS = {"optimizer": "adamw", "learning_rate": 1e-4, "beta_2": 0.99, "weight_decay": 0.0, "epochs": 300, "patience": 30}

INPUT_DTYPES = {"atom_z": "int32", "nbr_idx": "int32", "nbr_mask": "bool", "nbr_vec": "float32", "pe": "float32"}


class CrystalGraphPreprocessor(PaddedPreprocessor):
    """Structures (pymatgen `Structure`, ASE `Atoms`, Matbench JSON) → padded kNN crystal graphs.

    Arrays per row (N = the atom cap, taken from the data at `fit_transform`; K = `k`):
    `atom_z [N] int32` (0 = padding), `nbr_idx [N, K] int32`, `nbr_mask [N, K] bool`,
    `nbr_vec [N, K, 3] float32` and, with `positional`, `pe [N, 40] float32`. A structure over
    the cap (or over `max_atoms`), with an element the chosen atom feature table has no vector for
    (`featurizers/element_tables.py`), or without k neighbours within the largest radius is
    skipped with its reason.
    """

    def __init__(self, k: int = 12, start_radius: float = 8.0, radius_step: float = 2.0,
                 max_atoms: int | None = None, n_cap: int | None = None, positional: bool = True,
                 atom_features: str = "cgcnn92", elements: list[int] | None = None):
        from keras_chem.featurizers.element_tables import covered_elements

        self.k = int(k)
        self.start_radius = float(start_radius)
        self.radius_step = float(radius_step)
        self.max_atoms = max_atoms
        self.cap = n_cap
        self.positional = bool(positional)
        self.dtypes = {name: dtype for name, dtype in INPUT_DTYPES.items() if name != "pe" or self.positional}
        self.padded_axes = {name: (1,) for name in self.dtypes}
        self.atom_features = atom_features
        # the atomic numbers the table covers, kept so that predicting needs no table file
        self.elements = sorted(int(z) for z in elements) if elements is not None else \
            [int(z) for z in np.flatnonzero(covered_elements(atom_features))]
        self._covered = set(self.elements)

    @property
    def n_cap(self) -> int | None:
        return self.cap

    def _graph(self, item: Any):
        from pymatgen.core import Element

        from keras_chem.featurizers.crystal_graph import knn_graph
        from keras_chem.featurizers.positional import positional_encodings
        from keras_chem.structures.crystals import check_structure, to_atoms

        atoms = to_atoms(item)
        reason = check_structure(atoms)
        if reason:
            return None, reason
        missing = sorted({int(z) for z in atoms.numbers} - self._covered)
        if missing:
            return None, f"no {self.atom_features} vector for {', '.join(Element.from_Z(z).symbol for z in missing)}"
        if self.max_atoms is not None and len(atoms) > self.max_atoms:
            return None, f"{len(atoms)} atoms, over --max-atoms {self.max_atoms}"
        graph = knn_graph(atoms, k=self.k, start_radius=self.start_radius, step=self.radius_step)
        if self.positional:
            graph["pe"] = positional_encodings(graph["nbr_idx"], graph["nbr_mask"])
        return graph, None

    def featurize(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        from keras_chem.featurizers.crystal_graph import pad_graphs

        if input_kind != "structure":
            raise ValueError(f"a crystal graph model needs crystal structures, not {input_kind!r} inputs")
        kept, graphs, skipped = map_rows(ids, inputs, self._graph, "building crystal graphs")
        if graphs:
            arrays = pad_graphs(graphs, max(len(g["atom_z"]) for g in graphs))
        else:
            arrays = {name: np.zeros((0, *shape), dtype=dtype) for name, (shape, dtype) in self._signature(0).items()}
        return Features(kept=kept, arrays={name: arrays[name].astype(dtype) for name, dtype in self.dtypes.items()}, skipped=skipped)

    def over_cap_reason(self, size: int) -> str:
        return f"{size} atoms, over the model's cap of {self.cap} atoms"

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.count_nonzero(arrays["atom_z"], axis=1)

    def _signature(self, n: int) -> dict:
        shapes = {"atom_z": (n,), "nbr_idx": (n, self.k), "nbr_mask": (n, self.k), "nbr_vec": (n, self.k, 3), "pe": (n, N_POSITIONAL)}
        return {name: (shapes[name], dtype) for name, dtype in self.dtypes.items()}

    def input_signature(self) -> dict:
        return self._signature(self.cap)

    def get_config(self) -> dict:
        return {"k": self.k, "start_radius": self.start_radius, "radius_step": self.radius_step,
                "max_atoms": self.max_atoms, "n_cap": self.cap, "positional": self.positional,
                "atom_features": self.atom_features, "elements": self.elements}


def build(config: dict, preprocessor: CrystalGraphPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    """§A.6: element table → eTGC blocks (line graph, then atoms) → BN → + PE → GwT → masked
    mean → Softplus MLP → output head."""
    import keras
    from keras import ops

    from keras_chem.layers.crystal_edges import LineGraph, SphericalEdgeFeatures
    from keras_chem.layers.etgc import ETGC
    from keras_chem.layers.graphwise_transformer import GraphWiseTransformer
    from keras_chem.layers.masked_batch_norm import MaskedBatchNormalization
    from keras_chem.layers.masked_mean import MaskedMean
    from keras_chem.models.element_vectors import element_vectors
    from keras_chem.models.heads import output_head

    k, hidden = preprocessor.k, config["hidden"]
    inputs = {
        "atom_z": keras.Input((None,), dtype="int32", name="atom_z"),
        "nbr_idx": keras.Input((None, k), dtype="int32", name="nbr_idx"),
        "nbr_mask": keras.Input((None, k), dtype="bool", name="nbr_mask"),
        "nbr_vec": keras.Input((None, k, 3), dtype="float32", name="nbr_vec"),
        "pe": keras.Input((None, N_POSITIONAL), dtype="float32", name="pe"),
    }
    atom_z, nbr_idx, nbr_mask, nbr_vec = inputs["atom_z"], inputs["nbr_idx"], inputs["nbr_mask"], inputs["nbr_vec"]
    atom_mask = ops.greater(atom_z, 0)

    atom_features = element_vectors(atom_z, config["atom_features"], config["element_embedding"])
    if config["element_embedding"] and config["atom_features"] != "learned":
        learned = keras.layers.Embedding(MAX_Z + 1, config["element_embedding"], name="element_embedding")(atom_z)
        atom_features = keras.layers.Concatenate(name="atom_features")([atom_features, learned])
    h = keras.layers.Dense(hidden, name="atom_projection")(atom_features)

    edge_rbf = SphericalEdgeFeatures(name="edge_rbf")(nbr_vec, nbr_mask)
    e = keras.layers.Dense(edge_rbf.shape[-1], name="edge_projection")(edge_rbf)
    edge_dim = e.shape[-1]
    if config["line_graph"]:
        lg_idx, lg_mask, angle_rbf = LineGraph(name="line_graph")(nbr_idx, nbr_mask, nbr_vec)
        angles = keras.layers.Dense(angle_rbf.shape[-1], name="angle_projection")(angle_rbf)
        edge_nodes_mask = keras.layers.Reshape((-1,), name="edge_nodes_mask")(nbr_mask)

    for i in range(config["conv_layers"]):
        if config["line_graph"]:
            edge_nodes = keras.layers.Reshape((-1, edge_dim), name=f"edges_as_nodes_{i}")(e)
            # The line-graph block always reads the initial angle features (§A.4), so its
            # edge branch would never be used: `update_edges=False`.
            edge_nodes, _ = ETGC(edge_dim, config["line_d_k"], config["line_heads"], angles.shape[-1], update_edges=False,
                                 name=f"line_etgc_{i}")(edge_nodes, lg_idx, lg_mask, angles, node_mask=edge_nodes_mask)
            e = keras.layers.Reshape((-1, k, edge_dim), name=f"nodes_as_edges_{i}")(edge_nodes)
        h, e = ETGC(hidden, config["d_k"], config["heads"], edge_dim, name=f"etgc_{i}")(h, nbr_idx, nbr_mask, e, node_mask=atom_mask)

    h = MaskedBatchNormalization(momentum=0.9, epsilon=1e-5, name="atom_norm")(h, mask=atom_mask)
    e = MaskedBatchNormalization(momentum=0.9, epsilon=1e-5, name="edge_norm")(e, mask=nbr_mask)
    if config["positional"]:
        h = h + keras.layers.Dense(hidden, name="pe_projection")(inputs["pe"])
    for i in range(config["gwt_layers"]):
        h = GraphWiseTransformer(hidden, config["d_k"], config["heads"], edge_dim, attention=config["gwt_attention"],
                                 name=f"gwt_{i}")(h, nbr_idx, nbr_mask, e, node_mask=atom_mask)
        h = ops.softplus(h)

    z = MaskedMean(name="mean_pool")(h, atom_mask)
    z = keras.layers.Dense(hidden, name="readout_0")(ops.softplus(z))
    z = keras.layers.LayerNormalization(epsilon=1e-5, name="readout_norm")(z)
    for i in range(1, config["fc_layers"]):
        z = keras.layers.Dense(hidden, name=f"readout_{i}")(ops.softplus(z))
    z = keras.layers.Identity(name="crystal_embedding")(ops.softplus(z))
    z = keras.layers.Dropout(config["dropout"], name="readout_dropout")(z)
    return keras.Model(inputs, output_head(z, task, target_stats), name="crystograph")


class CrysToGraphFamily(ModelFamily):
    name = "crystograph"
    input_kinds = ("structure",)
    options = DEFAULTS
    training_defaults = TRAINING_DEFAULTS
    embedding_layer = "crystal_embedding"

    def preprocessor(self, config: dict) -> CrystalGraphPreprocessor:
        return CrystalGraphPreprocessor(k=config["k"], start_radius=config["start_radius"], radius_step=config["radius_step"],
                                        max_atoms=config["max_atoms"], atom_features=config["atom_features"])

    def preprocessor_from_config(self, config: dict) -> CrystalGraphPreprocessor:
        return CrystalGraphPreprocessor(**config)

    def check_config(self, config: dict) -> None:
        check_element_features(config["atom_features"])
        if config["atom_features"] == "learned" and not config["element_embedding"]:
            raise ValueError("atom_features learned needs --element-embedding > 0 (the width of the learned vectors)")
        if config["gwt_attention"] not in ("softmax", "sum"):
            raise ValueError(f"gwt_attention must be softmax or sum, not {config['gwt_attention']!r}")

    def build(self, config, preprocessor, task, target_stats=None):
        self.check_config(config)
        return build(config, preprocessor, task, target_stats)


FAMILY = CrysToGraphFamily()
