"""elEmBERT: a BERT-style encoder over atom tokens with a [CLS] classification head.

Paper: `elembert.md`; what the original code does: `specs/elembert-original.md`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_chem.data.types import Skip
from keras_chem.featurizers.bonds import MAX_BONDS, bonded_atoms, too_many_bonds
from keras_chem.featurizers.progress import map_rows
from keras_chem.featurizers.tokens import PAD_ID, Vocabulary, element_tokens
from keras_chem.models.base import Features, ModelFamily, PaddedPreprocessor, TaskInfo

CONFORMER_SEED = 0xC0FFEE  # conformers do not change with --seed, so they are computed once
TOKEN_SETS = ("v0", "v1")

DEFAULTS = {
    "tokens": "v1",
    "subelements": "default",
    "positional": False,
    "embed_dim": 32,
    "heads": 2,
    "layers": 2,
    "ff_dim": 32,
    "dropout": 0.1,
    "max_atoms": None,
    "distances": "auto",  # distance-biased attention: on for V1 tokens of SMILES (their conformers), off otherwise
    "descriptors": "auto",  # RDKit's 2-D descriptors beside the [CLS] embedding: on for V1 tokens of SMILES, off otherwise
    "descriptor_dropout": 0.5,  # on the standardized descriptors; 0.1 let them overfit before the encoder learned
    "descriptor_width": None,  # GELU units the descriptors pass through before meeting the [CLS] embedding (None: embed_dim)
    "descriptor_hidden_dropout": 0.0,  # on those units
    "atom_features": "auto",  # each atom's RDKit chemistry (degree, charge, hybridization, ...) added to its token embedding: as descriptors
    "bonds": "auto",  # attention bias from the molecular graph (bonds apart, bond kind): as descriptors, with distances
}
SMILES_SWITCHES = ("descriptors", "atom_features", "bonds")  # read from the SMILES: V1 tokens of SMILES only, by default
SWITCH_SETTINGS = {"auto": "auto", "true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
NO_COORDINATES = "distance attention needs the atoms' 3-D coordinates: use --tokens v1"
PERIODIC = "distance attention takes molecules; this structure is periodic"
NO_SMILES = "--{} takes molecules given as SMILES"


def switch_setting(value, flag: str = "distances") -> bool | str:
    """`--distances`, `--descriptors`, `--atom-features` or `--bonds` as given (a bool, or auto/true/false/on/off/...) → True, False or "auto"."""
    if isinstance(value, bool):
        return value
    if str(value).lower() not in SWITCH_SETTINGS:
        raise ValueError(f"--{flag} takes auto, true or false, not {value!r}")
    return SWITCH_SETTINGS[str(value).lower()]


class ElembertPreprocessor(PaddedPreprocessor):
    """SMILES / structures / formulas → `tokens [n, L] int32` as `[CLS] atoms [SEP]`, 0-padded;
    with `distances`, also `coordinates [n, L, 3] float32` (Å, zero for [CLS], [SEP] and padding); with
    `descriptors`, also `descriptors [n, D] float32` (RDKit's, squashed: `featurizers/descriptors.py`); with
    `atom_features`, also `atom_features [n, L, F] int8` (`featurizers/atom_features.py`, 0 where no atom); with
    `bonds`, also `bonds [n, L, MAX_BONDS, 2] int16` (`featurizers/bonds.py`).
    `"auto"` is settled by the kind of input (`settle`, which `featurize` calls): distances on for V1 tokens
    of SMILES, descriptors, atom features and (with distances) bonds too (a V0 model stays usable on structures and
    formulas), all off otherwise.

    `L` (the cap, `seq_len`) is taken from the data at `fit_transform` (longest sequence); with
    `max_atoms` set, a longer input is skipped and reported instead of truncated.
    """

    padded_axes = {"tokens": (1,), "coordinates": (1,), "atom_features": (1,), "bonds": (1,)}

    def __init__(self, tokens: str = "v1", max_atoms: int | None = None, seq_len: int | None = None,
                 vocabulary=None, subelements: str = "default", subelements_sha256: str | None = None,
                 conformer_seed: int = CONFORMER_SEED, distances: bool | str = "auto", descriptors: bool | str = "auto",
                 descriptor_names: list[str] | None = None, atom_features: bool | str = "auto", bonds: bool | str = "auto"):
        if tokens not in TOKEN_SETS:
            raise ValueError(f"unknown token set {tokens!r}; choose one of {', '.join(TOKEN_SETS)}")
        self.distances = switch_setting(distances)
        self.descriptors = switch_setting(descriptors, "descriptors")
        self.descriptor_names = descriptor_names
        self.atom_features = switch_setting(atom_features, "atom-features")
        self.bonds = switch_setting(bonds, "bonds")
        if self.distances is True and tokens != "v1":
            raise ValueError(NO_COORDINATES)
        if tokens != "v1":
            self.distances = False
        self.tokens = tokens
        self.max_atoms = max_atoms
        self.cap = seq_len
        self.conformer_seed = conformer_seed
        self.subelements = subelements
        self.subelements_sha256 = subelements_sha256
        self._subelement_model = None
        if tokens == "v1":
            self._subelement_model, sha256 = _load_subelements(subelements, subelements_sha256)
            self.subelements_sha256 = sha256
            default_vocabulary = Vocabulary(self._subelement_model.vocabulary_tokens())
        else:
            default_vocabulary = Vocabulary.elements()
        self.vocabulary = Vocabulary.from_dict(vocabulary) if vocabulary else default_vocabulary

    @property
    def seq_len(self) -> int | None:
        return self.cap

    def _tokenize(self, ids, inputs, input_kind):
        """`(kept rows, token lists, atoms of each kept row or None, skips)`."""
        if self.tokens == "v1":
            from keras_chem.featurizers.v1 import subelement_tokens_and_atoms

            return subelement_tokens_and_atoms(ids, inputs, input_kind, self._subelement_model, self.conformer_seed)
        kept, token_lists, skipped = map_rows(ids, inputs, lambda item: element_tokens(item, input_kind), "tokenizing")
        return kept, token_lists, [None] * len(kept), skipped

    def settle(self, input_kind: str) -> None:
        if self.distances == "auto":
            self.distances = input_kind == "smiles"
        for flag in SMILES_SWITCHES:
            if getattr(self, flag) == "auto":
                # bonds only beside distances: without them the encoder has keras-hub's blocks, as its shipped encoder does
                setattr(self, flag, input_kind == "smiles" and self.tokens == "v1" and (flag != "bonds" or self.distances))
            if getattr(self, flag) and input_kind != "smiles":
                raise ValueError(NO_SMILES.format(flag.replace("_", "-")))
        if self.descriptors and self.descriptor_names is None:
            from keras_chem.featurizers.descriptors import descriptor_names

            self.descriptor_names = descriptor_names()

    def featurize(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        from keras_chem.structures.molecules import with_hydrogens

        self.settle(input_kind)
        kept, token_lists, structures, skipped = self._tokenize(ids, inputs, input_kind)
        molecules = [_parsed(inputs[position]) for position in kept] if self.descriptors or self.atom_features or self.bonds else []
        # with hydrogens: the atoms of the tokens
        whole_molecules = [with_hydrogens(molecule) for molecule in molecules] if self.atom_features or self.bonds else []
        keep = []
        for row, (position, tokens) in enumerate(zip(kept, token_lists)):
            if self.max_atoms is not None and len(tokens) > self.max_atoms:
                skipped.append(Skip(ids[position], f"{len(tokens)} atoms, over --max-atoms {self.max_atoms}"))
            elif self.distances and structures[row].pbc.any():
                skipped.append(Skip(ids[position], PERIODIC))
            elif self.bonds and (reason := too_many_bonds(whole_molecules[row])):
                skipped.append(Skip(ids[position], reason))
            else:
                keep.append(row)
        width = max((len(token_lists[row]) for row in keep), default=0) + 2
        sequences = np.full((len(keep), width), PAD_ID, dtype=np.int32)
        for i, row in enumerate(keep):
            encoded = self.vocabulary.encode(token_lists[row])
            sequences[i, : len(encoded)] = encoded
        arrays = {"tokens": sequences}
        if self.distances:
            arrays["coordinates"] = _per_atom([structures[row].positions for row in keep], width, (3,), np.float32)
        if self.descriptors:
            from keras_chem.featurizers.descriptors import descriptor_functions, squashed_descriptors

            functions = descriptor_functions(self.descriptor_names)
            arrays["descriptors"] = np.zeros((len(keep), len(functions)), dtype=np.float32)
            for i, row in enumerate(keep):
                arrays["descriptors"][i] = squashed_descriptors(molecules[row], functions)
        if self.atom_features:
            from keras_chem.featurizers.atom_features import FEATURES, atom_feature_ids

            arrays["atom_features"] = _per_atom([atom_feature_ids(whole_molecules[row]) for row in keep], width, (len(FEATURES),), np.int8)
        if self.bonds:
            arrays["bonds"] = _per_atom([bonded_atoms(whole_molecules[row]) for row in keep], width, (MAX_BONDS, 2), np.int16)
        return Features(kept=np.asarray(kept, dtype=np.int64)[keep], arrays=arrays, skipped=skipped)

    def over_cap_reason(self, size: int) -> str:
        limit = f"--max-atoms {self.max_atoms}" if self.max_atoms is not None else f"the model's cap of {self.cap - 2} atoms"
        return f"{size - 2} atoms, over {limit}"

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.count_nonzero(arrays["tokens"] != PAD_ID, axis=1)

    def input_signature(self) -> dict:
        from keras_chem.models.elembert_encoder import ENCODER_INPUT_SHAPES, ENCODER_SWITCHES, encoder_input_names

        names = encoder_input_names({switch: getattr(self, switch) for switch in ENCODER_SWITCHES})
        signature = {name: ((self.cap, *ENCODER_INPUT_SHAPES[name][0][1:]), ENCODER_INPUT_SHAPES[name][1]) for name in names}
        if self.descriptors:
            signature["descriptors"] = ((len(self.descriptor_names),), "float32")
        return signature

    def get_config(self) -> dict:
        config = {
            "tokens": self.tokens,
            "max_atoms": self.max_atoms,
            "seq_len": self.cap,
            "vocabulary": self.vocabulary.to_dict(),
            "distances": self.distances,
            "descriptors": self.descriptors,
            "descriptor_names": self.descriptor_names,
            "atom_features": self.atom_features,
            "bonds": self.bonds,
        }
        if self.tokens == "v1":
            config.update(
                subelements=self.subelements, subelements_sha256=self.subelements_sha256, conformer_seed=self.conformer_seed
            )
        return config


def _per_atom(values: list[np.ndarray], width: int, shape: tuple, dtype) -> np.ndarray:
    """Each row's per-atom values `[atoms, *shape]` in a `[rows, width, *shape]` array at the atoms' token positions
    (after [CLS]), zero for [CLS], [SEP] and padding."""
    array = np.zeros((len(values), width, *shape), dtype=dtype)
    for i, value in enumerate(values):
        array[i, 1 : 1 + len(value)] = value
    return array


def _parsed(smiles: str):
    """The RDKit molecule (heavy atoms) of a SMILES the tokenizer took."""
    from keras_chem.structures.molecules import heavy_atom_mol

    molecule, reason = heavy_atom_mol(smiles)
    if molecule is None:
        raise ValueError(reason)
    return molecule


def _load_subelements(path: str, expected_sha256: str | None):
    """The sub-element model (`"default"`: the one shipped in weights/), checked against its hash."""
    import hashlib
    from pathlib import Path

    from keras_chem.featurizers.subelements import SubelementModel, default_model_path

    file = default_model_path() if path == "default" else Path(path)
    if not Path(file).exists():
        raise FileNotFoundError(f"sub-element model {file} not found; fit one with `kchem subelements fit`")
    sha256 = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    if expected_sha256 and sha256 != expected_sha256:
        raise ValueError(
            f"sub-element model {file} has sha256 {sha256[:12]}…, but this model was trained with {expected_sha256[:12]}…; "
            "tokens would not match"
        )
    return SubelementModel.load(file), sha256


def build(config: dict, preprocessor: ElembertPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    """Encoder → `[CLS]` embedding → one sigmoid per task, a softmax, or values."""
    import keras

    from keras_chem.models.elembert_encoder import build_encoder, encoder_config, encoder_inputs
    from keras_chem.models.heads import output_head

    config = encoder_config(config, preprocessor)
    # Variable length: batches are trimmed to their bucket; the export fixes it to the cap.
    inputs = encoder_inputs(config)
    encoder = build_encoder(config, len(preprocessor.vocabulary))
    embeddings = encoder(inputs)
    cls_embedding = keras.layers.Identity(name="cls_embedding")(embeddings[:, 0, :])
    features = cls_embedding
    if preprocessor.descriptors:
        inputs = {**inputs, "descriptors": keras.Input((len(preprocessor.descriptor_names),), dtype="float32", name="descriptors")}
        features = keras.layers.Concatenate(name="with_descriptors")([cls_embedding, descriptor_projection(inputs["descriptors"], config)])
    outputs = output_head(features, task, target_stats)
    return keras.Model(inputs, outputs, name="elembert")


def descriptor_projection(descriptors, config: dict):
    """Squashed descriptors → `[B, descriptor_width]`: standardized by batch statistics (their moving averages
    at inference), dropout, one GELU layer, and dropout on it if `descriptor_hidden_dropout`."""
    import keras

    x = keras.layers.BatchNormalization(name="descriptor_norm")(descriptors)
    x = keras.layers.Dropout(config["descriptor_dropout"], name="descriptor_dropout")(x)
    width = config["descriptor_width"] or config["embed_dim"]
    x = keras.layers.Dense(width, activation="gelu", name="descriptor_projection")(x)
    if config["descriptor_hidden_dropout"]:
        x = keras.layers.Dropout(config["descriptor_hidden_dropout"], name="descriptor_hidden_dropout")(x)
    return x


class ElembertFamily(ModelFamily):
    name = "elembert"
    options = DEFAULTS
    training_defaults = {"init": "auto"}  # the shipped pretrained encoder when the model's sizes and tokens fit it
    embedding_layer = "cls_embedding"

    @property
    def pretraining(self):
        from keras_chem.models.elembert_pretrain import MASKED_TOKENS

        return {"mlm": MASKED_TOKENS}

    def check_config(self, config: dict) -> None:
        if switch_setting(config["distances"]) is True and config["tokens"] != "v1":
            raise ValueError(NO_COORDINATES)
        for flag in SMILES_SWITCHES:
            switch_setting(config[flag], flag.replace("_", "-"))

    def preprocessor(self, config: dict) -> ElembertPreprocessor:
        return ElembertPreprocessor(tokens=config["tokens"], max_atoms=config["max_atoms"], subelements=config["subelements"],
                                    distances=config["distances"], descriptors=config["descriptors"],
                                    atom_features=config["atom_features"], bonds=config["bonds"])

    def preprocessor_from_config(self, config: dict) -> ElembertPreprocessor:
        return ElembertPreprocessor(**{"distances": False, "descriptors": False, "atom_features": False, "bonds": False, **config})  # as models saved before these options

    def build(self, config, preprocessor, task, target_stats=None):
        return build(config, preprocessor, task, target_stats)

    def initialize(self, model, source, config, preprocessor):
        """The shipped, a `kchem pretrain elembert` or a trained run's encoder, after checking it fits this model."""
        from keras_chem.models.elembert_pretrain import ENCODER_LAYER, pretrained_encoder_weights, set_encoder_weights

        weights = pretrained_encoder_weights(source, config, preprocessor)
        if weights is not None:
            set_encoder_weights(model.get_layer(ENCODER_LAYER), weights)


FAMILY = ElembertFamily()
