"""CrysAtom (paper `crysatom.md`, spec D.1): a CGCNN autoencoder pretrained on unlabelled crystals,
whose per-element mean atom vectors become an element table for downstream models.

Per batch, the encoder (Linear(92 → d, no bias) + 5 CGCNNConv, d = 200) runs on each crystal and
on two augmented views of it, drawn afresh every time a batch is read:
- the crystal's L2-normalised atom vectors feed two decoders: adjacency reconstruction (a bilinear
  d×d → 6 then Linear(6 → 6) over every ordered pair of real atoms; class = how often b is among a's
  neighbours, capped at 5) and feature reconstruction (Linear(d → 92) against the input table);
- the views (atom masking: the input vectors of max(1, ⌊10 %⌋) atoms zeroed; edge masking: each
  atom keeps ⌈90 %⌉ of its neighbour slots, the others become padding) are mean-pooled, projected
  to 128-d and L2-normalised for Barlow Twins.
Total loss 0.25 · adjacency + 0.25 · features + 0.5 · Barlow Twins. After training, each element's
vector is the mean of its atoms' encoder outputs over the whole corpus, L2-normalised
(`atom_vectors.npz`, written by `training/element_vectors.py`); the original keeps the last batch's
mean instead.
"""

from __future__ import annotations

import numpy as np

from keras_chem.models.base import PretrainObjective

ADJACENCY_CLASSES = 6
PROJECTION_WIDTH = 128
MASKED_ATOM_SHARE = 0.1
KEPT_EDGE_SHARE = 0.9
REDUNDANCY_WEIGHT = 0.0051
LOSS_WEIGHTS = {"adjacency": 0.25, "features": 0.25, "views": 0.5}
BINARY_TABLES = ("cgcnn92", "onehot")  # the feature decoder's BCE needs a 0/1 input table
CORPUS = ("matbench_phonons", "matbench_dielectric", "cegann_dimensionality", "cegann_spacegroup")
VECTORS_FILE = "atom_vectors.npz"


def build_encoder(config: dict, preprocessor):
    """CGCNN's graph inputs → atom vectors `[B, N, d]`; a negative atomic number marks an atom whose
    input vector is hidden (zeroed), 0 a padding slot."""
    import keras
    from keras import ops

    from keras_chem.models.cgcnn_encoder import convolutions
    from keras_chem.models.element_vectors import element_vectors
    from keras_chem.models.neighbor_graph import graph_inputs

    if config["atom_features"] not in BINARY_TABLES:
        raise ValueError(f"crysatom reconstructs a 0/1 input table: --atom-features {' or '.join(BINARY_TABLES)}, "
                         f"not {config['atom_features']!r}")
    inputs = graph_inputs(preprocessor.k)
    atom_mask = ops.not_equal(inputs["atom_z"], 0)
    vectors = element_vectors(ops.maximum(inputs["atom_z"], 0), config["atom_features"], config["atom_fea"])  # row 0 is zero
    h = keras.layers.Dense(config["atom_fea"], use_bias=False, name="atom_embedding")(vectors)
    return keras.Model(inputs, convolutions(h, inputs, config["conv_layers"], atom_mask), name="crysatom_encoder")


def _unit(x):
    from keras import ops

    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-12)


def build(config: dict, preprocessor):
    """The encoder on the crystal and its two views, the decoders and the projector: `(model, encoder)`."""
    import keras
    from keras import ops

    from keras_chem.featurizers.element_tables import element_table
    from keras_chem.layers.bilinear import PairBilinear
    from keras_chem.layers.masked_mean import MaskedMean
    from keras_chem.models.neighbor_graph import graph_inputs

    encoder = build_encoder(config, preprocessor)
    k = preprocessor.k
    inputs = graph_inputs(k)
    for view in (1, 2):
        inputs[f"atom_z_{view}"] = keras.Input((None,), dtype="int32", name=f"atom_z_{view}")
        inputs[f"nbr_mask_{view}"] = keras.Input((None, k), dtype="bool", name=f"nbr_mask_{view}")
    graph = {name: inputs[name] for name in ("atom_z", "nbr_idx", "nbr_mask", "nbr_vec")}
    atom_mask = ops.greater(inputs["atom_z"], 0)

    atoms = _unit(encoder(graph))
    adjacency = keras.layers.Dense(ADJACENCY_CLASSES, name="adjacency")(PairBilinear(ADJACENCY_CLASSES, name="adjacency_bilinear")(atoms, atoms))
    features = keras.layers.Dense(element_table(config["atom_features"]).shape[1], name="features")(atoms)

    pool = MaskedMean(name="view_pool")
    projector = [keras.layers.Dense(PROJECTION_WIDTH, name=f"projector_{i}") for i in range(3)]
    projections = []
    for view in (1, 2):
        h = encoder({**graph, "atom_z": inputs[f"atom_z_{view}"], "nbr_mask": inputs[f"nbr_mask_{view}"]})
        z = pool(h, atom_mask)
        for dense in projector:  # mean → SP → Linear(d → 128) → SP → Linear → SP → Linear
            z = dense(ops.softplus(z))
        projections.append(_unit(z))
    views = keras.layers.Concatenate(name="views")(projections)
    model = keras.Model(inputs, {"adjacency": adjacency, "features": features, "views": views}, name="crysatom")
    return model, encoder


def adjacency_classes(nbr_idx: np.ndarray, nbr_mask: np.ndarray, atom_mask: np.ndarray) -> np.ndarray:
    """int32 `[B, N, N]`: how often atom b fills a real neighbour slot of atom a (periodic images
    count again), capped at the last class; −1 where a or b is padding."""
    batch, n, _ = nbr_idx.shape
    rows = (np.arange(batch)[:, None, None] * n + np.arange(n)[None, :, None]) * n
    counts = np.bincount((rows + nbr_idx)[nbr_mask], minlength=batch * n * n).reshape(batch, n, n)
    classes = np.minimum(counts, ADJACENCY_CLASSES - 1)
    return np.where(atom_mask[:, :, None] & atom_mask[:, None, :], classes, -1).astype(np.int32)


def make_batch(config: dict, preprocessor, arrays=None):
    """`make(inputs) -> (x, y)`: the crystal, two fresh views and the reconstruction targets."""
    from keras_chem.featurizers.element_tables import element_table
    from keras_chem.models.views import random_subset

    table = element_table(config["atom_features"])
    rng = np.random.default_rng(np.random.randint(2**31))  # `pretrain` seeds numpy first

    def make(inputs: dict):
        atom_mask, nbr_mask = inputs["atom_z"] > 0, inputs["nbr_mask"]
        x = dict(inputs)
        hidden_count = np.maximum(1, np.floor(MASKED_ATOM_SHARE * atom_mask.sum(axis=1))).astype(int)
        kept_slots = np.ceil(KEPT_EDGE_SHARE * nbr_mask.sum(axis=-1)).astype(int)
        for view in (1, 2):
            hidden = random_subset(atom_mask, hidden_count, rng)
            x[f"atom_z_{view}"] = np.where(hidden, -inputs["atom_z"], inputs["atom_z"]).astype(np.int32)
            x[f"nbr_mask_{view}"] = random_subset(nbr_mask, kept_slots, rng)
        features = np.where(atom_mask[..., None], table[inputs["atom_z"]], np.nan).astype(np.float32)
        y = {"adjacency": adjacency_classes(inputs["nbr_idx"], nbr_mask, atom_mask), "features": features,
             "views": np.zeros((len(atom_mask), 1), dtype=np.float32)}
        return x, y

    return make


def losses():
    from keras_chem.losses.barlow_twins import BarlowTwinsLoss
    from keras_chem.losses.reconstruction import AdjacencyReconstructionLoss, FeatureReconstructionLoss

    return {"adjacency": AdjacencyReconstructionLoss(), "features": FeatureReconstructionLoss(),
            "views": BarlowTwinsLoss(REDUNDANCY_WEIGHT)}


CRYSATOM = PretrainObjective(
    name="crysatom",
    description="CGCNN autoencoder: adjacency + feature reconstruction and Barlow Twins on atom- and edge-masked views",
    build=build,
    make_batch=make_batch,
    loss=losses,
    loss_weights=LOSS_WEIGHTS,
    # the adjacency decoder scores every ordered atom pair: memory grows with the square of the atoms (a
    # few CEGANN carbon clusters have up to 920), so larger crystals are left out unless --max-atoms says otherwise
    defaults={"atom_features": "cgcnn92", "atom_fea": 200, "conv_layers": 5, "learning_rate": 1e-3, "batch_size": 128,
              "patience": 10, "max_atoms": 128},
    validation_share=0.05,
    padded_inputs={"atom_z_1": (1,), "atom_z_2": (1,), "nbr_mask_1": (1,), "nbr_mask_2": (1,)},
    padded_targets={"adjacency": (1, 2), "features": (1,)},
    default_datasets=CORPUS,
    element_vectors=VECTORS_FILE,
    usage="use its atom vectors with `--atom-features {out}/" + VECTORS_FILE + "` (cgcnn, crystograph, roost --element-features)",
)
