"""Keras layers, one per file; importing this package registers them all for `.keras` loading."""

from keras_chem.layers.atom_pooling import AtomPooling
from keras_chem.layers.bilinear import PairBilinear
from keras_chem.layers.cgcnn_conv import CGCNNConv
from keras_chem.layers.crystal_edges import LineGraph, SphericalEdgeFeatures
from keras_chem.layers.dimenet import (BesselBasis, DimeNetEmbedding, DimeNetInteraction, DimeNetOutput, GlorotOrthogonal, SphericalBasis,
                                       Triplets)
from keras_chem.layers.distance_attention import BiasedTransformerEncoder, PairDistanceBias
from keras_chem.layers.etgc import ETGC
from keras_chem.layers.gaussian_expansion import GaussianExpansion
from keras_chem.layers.graphwise_transformer import GraphWiseTransformer
from keras_chem.layers.masked_batch_norm import MaskedBatchNormalization
from keras_chem.layers.masked_mean import MaskedMean
from keras_chem.layers.rescale import Rescale
from keras_chem.layers.residual_network import ResidualNetwork
from keras_chem.layers.roost_message import RoostMessage
from keras_chem.layers.schnet import GaussianSmearing, SchNetInteraction
from keras_chem.layers.set_transformer import (MultiheadAttentionBlock, PoolingByMultiheadAttention, SetAttentionBlock,
                                               SetTransformerPooling)
from keras_chem.layers.weighted_attention_pooling import WeightedAttentionPooling

__all__ = [
    "AtomPooling", "BesselBasis", "BiasedTransformerEncoder", "CGCNNConv", "DimeNetEmbedding", "DimeNetInteraction", "DimeNetOutput", "ETGC", "GaussianExpansion",
    "GaussianSmearing", "GlorotOrthogonal", "GraphWiseTransformer", "LineGraph", "MaskedBatchNormalization", "MaskedMean",
    "MultiheadAttentionBlock", "PairBilinear", "PairDistanceBias", "PoolingByMultiheadAttention", "Rescale", "ResidualNetwork", "RoostMessage",
    "SchNetInteraction", "SetAttentionBlock", "SetTransformerPooling", "SphericalBasis", "SphericalEdgeFeatures", "Triplets",
    "WeightedAttentionPooling",
]
