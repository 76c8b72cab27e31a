"""Convert the Golub et al. (1999) leukemia training set into ``golub.npz`` (run ONCE, committed output).

Source: Debian package ``r-bioc-multtest`` (Bioconductor multtest 2.54.0, LGPL-3+), file
``usr/lib/R/site-library/multtest/data/golub.RData``, objects ``golub`` (3051 genes x 38 samples,
standardised as in Dudoit et al. 2002), ``golub.cl`` (0 = ALL, 1 = AML) and ``golub.gnames``
(3051 x 3: index, description, accession).

Reproduce (needs network to the Debian mirror and PyPI ``rdata``; the runtime needs neither)::

    apt-get update && apt-get download r-bioc-multtest
    dpkg -x r-bioc-multtest_*.deb deb
    pip install --target /tmp/rdata rdata
    PYTHONPATH=/tmp/rdata python python/tfe_accel/data/make_golub.py \
        deb/usr/lib/R/site-library/multtest/data/golub.RData

Transformation: transposed to samples x genes; the values have 5 decimals in the source, so they
are stored exactly as int32 ``round(value * 1e5)`` (``scale = 1e5``) in a compressed .npz; labels as
int8 (1 = AML, the positive class); gene accessions as strings. Nothing else is changed.
"""
from __future__ import annotations

import hashlib
import os
import sys

import numpy as np


def convert(rdata_path: str, out_path: str) -> None:
    import rdata  # only needed for this one-off conversion

    with open(rdata_path, "rb") as f:
        raw = f.read()
    conv = rdata.read_rda(rdata_path)
    x = np.asarray(getattr(conv["golub"], "values", conv["golub"]), dtype=np.float64).T  # 38 x 3051
    y = np.asarray(conv["golub.cl"], dtype=np.float64)
    names = np.asarray(conv["golub.gnames"], dtype=object).reshape(x.shape[1], 3, order="F")
    scaled = np.round(x * 1e5)
    if np.abs(scaled / 1e5 - x).max() > 1e-9:
        raise SystemExit("golub values have more than 5 decimals: refusing a lossy conversion")
    if not set(np.unique(y)) <= {0.0, 1.0}:
        raise SystemExit("unexpected labels in golub.cl")
    np.savez_compressed(
        out_path,
        x_int=scaled.astype(np.int32),
        scale=np.float64(1e5),
        y=y.astype(np.int8),
        genes=np.array([str(a) for a in names[:, 2]]),
        source_sha256=np.array(hashlib.sha256(raw).hexdigest()),
    )
    print(f"wrote {out_path}: {x.shape[0]} samples x {x.shape[1]} genes, "
          f"{int(y.sum())} AML / {int((1 - y).sum())} ALL")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    convert(sys.argv[1], os.path.join(os.path.dirname(os.path.abspath(__file__)), "golub.npz"))
