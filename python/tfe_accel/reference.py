"""NumPy references of the kernels' arithmetic, shared by the tests and bench/gpu_check.py.

Imports only NumPy and the standard library: bench/gpu_check.py runs on a GPU machine without
TensorFlow and loads this file by path (``tfe_accel/__init__.py`` imports TensorFlow); the tests
import it as ``tfe_accel.reference``.

Ring elements are int64 arrays read as uint64, so sums and products wrap mod 2^64 (NumPy's uint64
arithmetic on arrays wraps without a warning). Functions return int64 arrays unless they say
otherwise. Nothing here draws from the PRG itself: the steps take the drawn words as arguments, and
the helpers that draw take ``seeded_uniform``, the CPU PRG ``tfe_accel._native.seeded_uniform``
(``seeded_uniform(shape, seed, minval, maxval, dtype)``, TFE's ``sample_seeded_uniform``).
"""
import functools

import numpy as np

U64 = np.uint64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EDGE_INT64 = np.array([0, 1, -1, INT64_MAX, INT64_MIN], dtype=np.int64)
# the edge values and the ones next to the sign bit, plus two small ones of either sign
EDGE_INT64_WIDE = np.array([0, 1, -1, INT64_MAX, INT64_MIN, 2**62, -(2**62), 12345, -12345],
                           dtype=np.int64)


def _mod_2_64(fn):
    """Runs `fn` with NumPy's overflow warnings off: wrapping is the arithmetic meant (arrays wrap
    silently anyway; 0-d inputs become NumPy scalars, whose overflow would warn)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with np.errstate(over="ignore"):
            return fn(*args, **kwargs)
    return wrapped


# ------------------------------------------------------------------------------- views, inputs

def as_u64(a):
    """`a` (any integer array or values) as uint64, the ring Z_2^64."""
    return np.asarray(a).astype(np.int64).view(U64)


def as_i64(a):
    """uint64 ring values back to int64 (the dtype of the kernels' tensors)."""
    return np.asarray(a, dtype=U64).view(np.int64)


def random_int64(rng, shape, edges=EDGE_INT64, copies=1, spread=False, fraction=None):
    """Uniform int64 over the whole range with edge values written in.

    By default the first min(size, copies * len(edges)) elements (C order) get `edges`, cycled;
    with spread=True as many distinct random positions get them instead; with `fraction`, each
    element independently, with that probability, gets an edge value drawn at random."""
    x = rng.integers(INT64_MIN, INT64_MAX, size=shape, dtype=np.int64, endpoint=True)
    edges = np.asarray(edges, dtype=np.int64)
    if x.size == 0 or edges.size == 0:
        return x
    if fraction is not None:
        mask = rng.random(x.shape) < fraction
        x[mask] = rng.choice(edges, size=int(mask.sum()))
        return x
    flat = x.reshape(-1)
    k = min(flat.size, copies * edges.size)
    where = rng.choice(flat.size, size=k, replace=False) if spread else slice(0, k)
    flat[where] = np.resize(edges, k)
    return x


def random_key(rng):
    """A PRG key: int32[8], uniform."""
    return rng.integers(-(2**31), 2**31, size=8, dtype=np.int32)


# ------------------------------------------------------------------------------- PRG streams

def seed_plus_nonce(key, nonce):
    """TFE's `key + nonce` on an int32[8] key: int32 addition of the nonce's low 32 bits, wrapping."""
    return (np.asarray(key).astype(np.uint32) + np.uint32(int(nonce) & 0xFFFFFFFF)).view(np.int32)


def _shape(shape):
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)


def prg(seeded_uniform, key, nonce, shape, dtype="int64"):
    """U(key + nonce) over the dtype's range [min, max), in the dtype (int8 .. int64): the stream's
    first elements in C order over `shape` (an int: 1-D)."""
    shape = _shape(shape)
    info = np.iinfo(dtype)
    return seeded_uniform(list(shape), seed_plus_nonce(key, nonce), int(info.min), int(info.max),
                          np.dtype(dtype).name)


def prg_u64(seeded_uniform, key, nonce, shape):
    """The int64 stream U(key + nonce) as uint64 (see prg)."""
    return as_u64(prg(seeded_uniform, key, nonce, shape, "int64"))


@_mod_2_64
def zero_share(seeded_uniform, key0, nonce0, key1, nonce1, shape):
    """A party's share of TFE's arithmetic zero sharing, U(key0 + nonce0) - U(key1 + nonce1), uint64."""
    return (prg_u64(seeded_uniform, key0, nonce0, shape)
            - prg_u64(seeded_uniform, key1, nonce1, shape))


def boolean_zero_share(seeded_uniform, key_a, nonce_a, key_b, nonce_b, shape, dtype="int64"):
    """A party's share of TFE's boolean zero sharing, U(key_a + nonce_a) ^ U(key_b + nonce_b), in
    the dtype."""
    return (prg(seeded_uniform, key_a, nonce_a, shape, dtype)
            ^ prg(seeded_uniform, key_b, nonce_b, shape, dtype))


# ------------------------------------------------------------------------------- ring products

@_mod_2_64
def ring_matmul(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b) mod 2^64 (batch dims broadcast as np.matmul; its ValueError on bad shapes)."""
    A = np.swapaxes(a, -1, -2) if transpose_a else a
    B = np.swapaxes(b, -1, -2) if transpose_b else b
    return np.matmul(as_u64(A), as_u64(B)).view(np.int64)  # integer matmul wraps


@_mod_2_64
def rss_matmul(x_i, x_next, y_i, y_next, alpha, transpose_a=False, transpose_b=False):
    """ABY3's local matmul step: x_i.y_i + x_i.y_next + x_next.y_i + alpha (alpha: the zero share)."""
    mm = lambda x, y: as_u64(ring_matmul(x, y, transpose_a, transpose_b))  # noqa: E731
    return as_i64(mm(x_i, y_i) + mm(x_i, y_next) + mm(x_next, y_i) + as_u64(alpha))


@_mod_2_64
def rss_mul(x_i, x_next, y_i, y_next, alpha):
    """ABY3's local elementwise product step: x_i y_i + x_i y_next + x_next y_i + alpha."""
    xi, xn, yi, yn = (as_u64(v) for v in (x_i, x_next, y_i, y_next))
    return as_i64(xi * yi + xi * yn + xn * yi + as_u64(alpha))


# ------------------------------------------------------------------------------- truncation

def truncate_local_p0(x0, amount):
    """ABY3's non-interactive truncation, P0: x0 >> amount (arithmetic shift)."""
    return np.asarray(x0, dtype=np.int64) >> np.int64(amount)


@_mod_2_64
def truncate_local_p1(x1, x2, r, amount):
    """P1: ((x1 + x2) >> amount) - r, r = U(key + nonce)."""
    t = as_u64(as_i64(as_u64(x1) + as_u64(x2)) >> np.int64(amount))
    return as_i64(t - as_u64(r))


@_mod_2_64
def trunc_msb0(xs, R, y2, r, amount, lift=0, unlift=0):
    """The whole MSB-0 truncation of TFE's _truncate_msb0_secureq8_private (heuristic truncation:
    with the lift / unlift constants), every party's outputs as uint64.

    xs: the three shares x0, x1, x2; R: the [4] + shape words U(key_02 + nonce_02); y2: the words
    U(key_12 + nonce_12); r: the dealer's U(r_seed). Keys: r1, s1, m1 (dealer to P1), c0, c1 (the
    masked values), yt0, yt1 (the unmasked shares), z00, z11, z20, z21 and mid = yt0 + yt1."""
    x0, x1, x2 = (as_u64(a) for a in xs)
    R, y2, r = as_u64(R), as_u64(y2), as_u64(r)
    msb = U64(1 << 63)
    h = r & msb
    sv = (r >> U64(amount)) - (h >> U64(amount))
    rmsb = (h != 0).astype(U64)
    r1, s1, m1 = r - R[0], sv - R[1], rmsb - R[2]
    c0 = x0 + U64(lift) + x1 + R[0]
    c1 = x2 + r1
    c = c0 + c1
    mod_mask = U64((1 << (63 - amount)) - 1)
    top = mod_mask + U64(1)
    cmsb = (c & msb) != 0
    b0 = np.where(cmsb, U64(1) - R[2], R[2])
    yt0 = ((c >> U64(amount)) & mod_mask) - R[1] + b0 * top - R[3]
    b1 = np.where(cmsb, U64(0) - m1, m1)
    yt1 = U64(0) - s1 + b1 * top - y2
    z0 = R[3] - U64(unlift)
    return dict(r1=r1, s1=s1, m1=m1, c0=c0, c1=c1, yt0=yt0, yt1=yt1, z00=z0, z11=y2,
                z20=y2, z21=z0, mid=yt0 + yt1)


@_mod_2_64
def trunc_msb0_mask_scaled_p0(x0, x1, k, r0, lift):
    """P0's masking of k_j * x: (x0 + x1) k_j + lift + r0[j], [K] + shape (r0: U(key + nonce))."""
    kk = as_u64(k).reshape((-1,) + (1,) * np.ndim(x0))
    return as_i64((as_u64(x0) + as_u64(x1))[None] * kk + U64(lift) + as_u64(r0))


@_mod_2_64
def trunc_msb0_mask_scaled_p1(x2, k, r1):
    """P1's masking of k_j * x: x2 k_j + r1[j], [K] + shape."""
    kk = as_u64(k).reshape((-1,) + (1,) * np.ndim(x2))
    return as_i64(as_u64(x2)[None] * kk + as_u64(r1))


# ------------------------------------------------------------------------------- comparison, bits

@_mod_2_64
def pivot_diff(party, x_a, x_b, pivots):
    """The comparison set-up: the party's two shares of pivots[j] - x, [C] + shape (P0 holds the
    public pivots in its first share, P2 in its second)."""
    C = len(pivots)
    shape = np.shape(x_a)
    pv = as_u64(pivots).reshape((C,) + (1,) * len(shape))
    zero = np.zeros((C,) + (1,) * len(shape), U64)
    da = (pv if party == 0 else zero) - as_u64(x_a)[None]
    db = (pv if party == 2 else zero) - as_u64(x_b)[None]
    return as_i64(da), as_i64(db)


def bit_gather(x, start, stride):
    """TFE's bit_gather: bits start, start + stride, ... of each element packed from bit 0 up, in
    x's dtype (int8 .. int64)."""
    x = np.asarray(x)
    bits = 8 * x.dtype.itemsize
    udt = np.dtype(f"u{x.dtype.itemsize}")
    u = x.view(udt).astype(U64)
    out = np.zeros(x.shape, U64)
    for i, d in enumerate(range(start, bits, stride)):
        out |= ((u >> U64(d)) & U64(1)) << U64(i)
    return out.astype(udt).view(x.dtype)


HALF_DTYPE = {"int64": "int32", "int32": "int16", "int16": "int8", "int8": "int8"}


def kogge_stone_round(g_a, g_b, p_a, p_b, alpha_g, alpha_p):
    """One Kogge-Stone round's local AND terms on boolean shares (int8 .. int64 words), in the half
    width (int8 stays int8): (zg, zp, gs1_a, gs1_b) with zg = G0a P1a ^ G0a P1b ^ G0b P1a ^ alpha_g,
    zp likewise from P0, P1 with alpha_p, where X0 / X1 are the even / odd bits of X."""
    half = np.dtype(HALF_DTYPE[np.asarray(g_a).dtype.name])
    udt = np.dtype(f"u{half.itemsize}")
    part = lambda v, s: bit_gather(v, s, 2).astype(udt).view(half)  # noqa: E731  (the low bits)
    g0a, g0b, p0a, p0b = (part(v, 0) for v in (g_a, g_b, p_a, p_b))
    g1a, g1b, p1a, p1b = (part(v, 1) for v in (g_a, g_b, p_a, p_b))
    zg = (g0a & p1a) ^ (g0a & p1b) ^ (g0b & p1a) ^ alpha_g
    zp = (p0a & p1a) ^ (p0a & p1b) ^ (p0b & p1a) ^ alpha_p
    return zg, zp, g1a, g1b


def bit_reverse(x):
    """The 64 bits of each int64 element in reverse order."""
    u = as_u64(x)
    out = np.zeros(u.shape, U64)
    for b in range(64):
        out |= ((u >> U64(b)) & U64(1)) << U64(63 - b)
    return as_i64(out)


def xor_indices(x):
    """The XOR of the positions of the set bits of each int64 element."""
    u = as_u64(x)
    out = np.zeros(u.shape, U64)
    for b in range(64):
        out ^= ((u >> U64(b)) & U64(1)) * U64(b)
    return as_i64(out)


# ------------------------------------------------------------------------------- sigmoid

def piecewise_linear(x, pivots, coeffs):
    """TFE's polynomial_piecewise with constant or linear pieces: piece j where x <= pivots[j]
    first holds (the last piece above every pivot); coeffs[j] is (c,) or (c0, c1)."""
    x = np.asarray(x, dtype=np.float64)
    conds = [x <= p for p in pivots]
    vals = [np.full_like(x, cf[0]) if len(cf) == 1 else cf[0] + cf[1] * x for cf in coeffs]
    return np.select(conds, vals[:-1], vals[-1])
