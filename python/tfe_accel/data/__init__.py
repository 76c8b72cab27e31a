"""Data for secure training: loaders with validation, the embedded Golub set, synthetic iDASH shapes."""
from .datasets import SYNTHETIC_SHAPES, load_golub, split_owners, stratified_split, synthetic
from .loaders import (
    DataError,
    OwnerData,
    check_owners,
    load_idash,
    load_npz,
    load_owner,
    load_table,
    save_idash,
    save_table,
)

__all__ = [
    "SYNTHETIC_SHAPES", "DataError", "OwnerData", "check_owners", "load_golub", "load_idash",
    "load_npz", "load_owner", "load_table", "save_idash", "save_table", "split_owners",
    "stratified_split", "synthetic",
]
