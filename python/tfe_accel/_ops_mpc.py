"""TF op wrappers for the MPC protocol-step kernels (truncation, bit extraction, Kogge-Stone).

Each function is one party's local computation in one protocol step of TF Encrypted's ABY3, run
as one fused op. It takes only that party's shares, PRG keys (TFE's ``prot.pairwise_keys()[i][j]``,
int32[8]) and nonces (``prot.pairwise_nonces()[k]``, int64 scalars) and the messages it received;
whatever it returns for another party is a message the caller sends (a graph edge).
See docs/mpc_steps.md for the protocols, parties and messages.
"""
from __future__ import annotations

import tensorflow as tf

from ._loader import load_ops

_ops = load_ops()

__all__ = [
    "HEURISTIC_BOUND_BITS",
    "heuristic_lift",
    "heuristic_unlift",
    "truncate_local_p0",
    "truncate_local_p1",
    "truncate_local_p2",
    "trunc_msb0_dealer",
    "trunc_msb0_mask_p0",
    "trunc_msb0_mask_p1",
    "trunc_msb0_unmask_p0",
    "trunc_msb0_unmask_p1",
    "trunc_msb0_combine",
    "bit_extract_setup",
    "carry_setup_and",
    "kogge_stone_round",
    "kogge_stone_update",
    "SIGMOID_APPROX",
    "piecewise_constants",
    "pivot_diff",
    "piece_select_and",
    "trunc_msb0_mask_scaled_p0",
    "trunc_msb0_mask_scaled_p1",
    "mul_ab_step1_p0",
    "mul_ab_step1_p1",
    "mul_ab_step1_p2",
    "mul_ab_step2_p0",
    "mul_ab_step2_p1",
    "mul_ab_step2_p2",
    "pc_open",
    "pc_dealer",
    "pc_mask_p0",
    "pc_mask_p1",
    "pc_resolve",
]

HEURISTIC_BOUND_BITS = 62  # TFE: x.backing_dtype.nbits - 2 for int64

_HALF = {tf.int64: tf.int32, tf.int32: tf.int16, tf.int16: tf.int8, tf.int8: tf.int8}


def _to_signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def heuristic_lift() -> int:
    """The constant TFE's heuristic truncation adds to share x0 before MSB-0 truncation (2^62)."""
    return 1 << HEURISTIC_BOUND_BITS


def heuristic_unlift(amount: int) -> int:
    """The constant subtracted from share y0 afterwards (2^(62 - amount))."""
    return 1 << (HEURISTIC_BOUND_BITS - amount)


def _amount(amount):
    amount = int(amount)
    if not 1 <= amount <= 62:
        raise ValueError(f"amount must be in [1, 62], got {amount}")
    return amount


def _nonce(nonce):
    return tf.convert_to_tensor(nonce, tf.int64)


def _i64(x, name):
    """A share tensor: must already be int64 (no silent casts of shares)."""
    t = tf.convert_to_tensor(x)
    if t.dtype != tf.int64:
        raise TypeError(f"{name} must have dtype int64, got {t.dtype.name}")
    return t


def _same_dtype(x, ref, name):
    t = tf.convert_to_tensor(x)
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have dtype {ref.dtype.name} like g_a, got {t.dtype.name}")
    return t


def _key(key):
    return tf.convert_to_tensor(key, tf.int32)


# ----------------------------------------------------------------- truncation (a)

def truncate_local_p0(x0, amount=16, name=None):
    """ABY3 non-interactive truncation (TFE ``_truncate_local_private``), party P0.

    y0 = x0 >> amount (arithmetic). P0 sends y0 to P2; P0's output shares are (y0, y1 from P1).
    """
    return _ops.mpc_truncate_local_p0(_i64(x0, "x0"), amount=_amount(amount), name=name)


def truncate_local_p1(x1, x2, key, nonce, amount=16, name=None):
    """ABY3 non-interactive truncation, party P1 (key = keys[1][1], nonce = nonces[1]).

    Returns (y1, r): y1 = ((x1 + x2) >> amount) - r is sent to P0; P1's shares are (y1, r).
    """
    return _ops.mpc_truncate_local_p1(_i64(x1, "x1"), _i64(x2, "x2"), _key(key), _nonce(nonce), amount=_amount(amount),
                                      name=name)


def truncate_local_p2(shape, key, nonce, name=None):
    """ABY3 non-interactive truncation, party P2 (key = keys[2][0], nonce = nonces[1]).

    Returns r (the same r as P1's); P2's shares are (r, y0 from P0).
    """
    return _ops.mpc_truncate_local_p2(shape, _key(key), _nonce(nonce), name=name)


# ----------------------------------------------------------------- truncation (b)

def trunc_msb0_dealer(shape, key_20, nonce_20, key_21, nonce_21, r_seed, amount=16,
                      unlift=0, name=None):
    """MSB-0 truncation (TFE ``_truncate_msb0_secureq8_private``), dealer P2.

    key_20 = keys[2][1], nonce_20 = nonces[2] (shared with P0); key_21 = keys[2][0],
    nonce_21 = nonces[1] (shared with P1); r_seed = a fresh ``secure_seed()`` on P2 (TFE draws r
    with ``sample_uniform``). Returns (r1, s1, rmsb1, z20, z21): the first three are sent to P1,
    (z20, z21) = (y2, y0 - unlift) are P2's output shares. For the heuristic truncation pass
    ``unlift=heuristic_unlift(amount)``.
    """
    return _ops.mpc_trunc_msb0_dealer(shape, _key(key_20), _nonce(nonce_20), _key(key_21),
                                      _nonce(nonce_21), _key(r_seed), amount=_amount(amount),
                                      unlift=_to_signed64(unlift), name=name)


def trunc_msb0_mask_p0(x0, x1, key, nonce, lift=0, name=None):
    """MSB-0 truncation, P0 masking (key = keys[0][0], nonce = nonces[2]).

    c0 = x0 + x1 + lift + r0, sent to P1. For the heuristic truncation ``lift=heuristic_lift()``.
    """
    return _ops.mpc_trunc_msb0_mask_p0(_i64(x0, "x0"), _i64(x1, "x1"), _key(key), _nonce(nonce), lift=_to_signed64(lift),
                                       name=name)


def trunc_msb0_mask_p1(x2, r1, name=None):
    """MSB-0 truncation, P1 masking: c1 = x2 + r1 (r1 received from P2), sent to P0."""
    return _ops.mpc_trunc_msb0_mask_p1(_i64(x2, "x2"), _i64(r1, "r1"), name=name)


def trunc_msb0_unmask_p0(c0, c1, key, nonce, amount=16, unlift=0, name=None):
    """MSB-0 truncation, P0 unmasking (key = keys[0][0], nonce = nonces[2]).

    Returns (y_tilde0, z00): y_tilde0 is sent to P1; z00 = y0 - unlift is P0's first output share.
    """
    return _ops.mpc_trunc_msb0_unmask_p0(_i64(c0, "c0"), _i64(c1, "c1"), _key(key), _nonce(nonce),
                                         amount=_amount(amount), unlift=_to_signed64(unlift),
                                         name=name)


def trunc_msb0_unmask_p1(c0, c1, s1, rmsb1, key, nonce, amount=16, name=None):
    """MSB-0 truncation, P1 unmasking (key = keys[1][1], nonce = nonces[1]).

    Returns (y_tilde1, z11): y_tilde1 is sent to P0; z11 = y2 is P1's second output share.
    """
    return _ops.mpc_trunc_msb0_unmask_p1(_i64(c0, "c0"), _i64(c1, "c1"), _i64(s1, "s1"),
                                         _i64(rmsb1, "rmsb1"), _key(key), _nonce(nonce),
                                         amount=_amount(amount), name=name)


def trunc_msb0_combine(y_tilde0, y_tilde1, name=None):
    """MSB-0 truncation, P0 and P1: the shared output share y_tilde0 + y_tilde1."""
    return _ops.mpc_trunc_msb0_combine(_i64(y_tilde0, "y_tilde0"), _i64(y_tilde1, "y_tilde1"), name=name)


# ----------------------------------------------------------------- bit extraction / carry

def bit_extract_setup(party, x_a, x_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """Bit-extraction (a2b) set-up of TFE's ``msb``/``_bit_extract_private``, party ``party``.

    key_a = keys[i][0], nonce_a = nonces[(i+2)%3], key_b = keys[i][1], nonce_b = nonces[i].
    P0 returns (x0 + x1) ^ alpha0 (sent to P2), P1 alpha1 (sent to P0), P2 alpha2 (sent to P1).
    """
    party = int(party)
    if party not in (0, 1, 2):
        raise ValueError(f"party must be 0, 1 or 2, got {party}")
    return _ops.mpc_bit_extract_setup(_i64(x_a, "x_a"), _i64(x_b, "x_b"), _key(key_a), _nonce(nonce_a), _key(key_b),
                                      _nonce(nonce_b), party=party, name=name)


def carry_setup_and(op1_a, op1_b, op2_a, op2_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """Carry set-up (TFE ``_carry_computation``, pos = 62), any party.

    Returns (z, p_a, p_b, top_a, top_b): z is the local term of G = (op1 << 1) & (op2 << 1), sent
    to P_{i-1}; (p_a, p_b) the party's shares of P; top_* its int8 shares of bit 63 of op1 ^ op2.
    """
    return _ops.mpc_carry_setup_and(_i64(op1_a, "op1_a"), _i64(op1_b, "op1_b"),
                                    _i64(op2_a, "op2_a"), _i64(op2_b, "op2_b"), _key(key_a), _nonce(nonce_a),
                                    _key(key_b), _nonce(nonce_b), name=name)


def kogge_stone_round(g_a, g_b, p_a, p_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """One Kogge-Stone carry round (TFE ``_carry_computation`` loop body), any party.

    Bit split/gather of G and P into the half-width dtype, the local terms of the AND gates
    Gs[0] & Ps[1] (zero share at the given nonces) and Ps[0] & Ps[1] (nonces + 1). Returns
    (zg, zp, gs1_a, gs1_b): zg and zp are sent to P_{i-1}; gs1_* are kept for the update.
    """
    g_a = tf.convert_to_tensor(g_a)
    if g_a.dtype not in _HALF:
        raise TypeError(f"g_a must be int8, int16, int32 or int64, got {g_a.dtype.name}")
    return _ops.mpc_kogge_stone_round(g_a, _same_dtype(g_b, g_a, "g_b"),
                                      _same_dtype(p_a, g_a, "p_a"), _same_dtype(p_b, g_a, "p_b"), _key(key_a), _nonce(nonce_a),
                                      _key(key_b), _nonce(nonce_b), Tout=_HALF[g_a.dtype],
                                      name=name)


def kogge_stone_update(gs1_a, gs1_b, zg_own, zg_recv, name=None):
    """Kogge-Stone G update after a round's messages, any party: (gs1_a ^ zg_own, gs1_b ^ zg_recv).

    The new P shares are (zp_own, zp_received) unchanged.
    """
    gs1_a = tf.convert_to_tensor(gs1_a)
    return _ops.mpc_kogge_stone_update(gs1_a, _same_dtype(gs1_b, gs1_a, "gs1_b"),
                                       _same_dtype(zg_own, gs1_a, "zg_own"),
                                       _same_dtype(zg_recv, gs1_a, "zg_recv"), name=name)


# ----------------------------------------------------------------- sigmoid piece evaluation

SIGMOID_APPROX = {
    "5_piecewise_linear": ((-4, -1.5, 1.5, 4),
                           ((1e-4,), (0.281, 0.066), (0.5, 0.212), (0.719, 0.066), (1 - 1e-4,))),
    "3_piecewise_linear": ((-2.5, 2.5), ((1e-4,), (0.50, 0.17), (1 - 1e-4,))),
}


def piecewise_constants(c, coeffs, scaling_factor=2**16):
    """Encode TFE ``polynomial_piecewise``'s pivots and linear coefficients exactly as TFE does.

    Pivots go through NumPy float64 (``define_constant(np.array(c))``), the coefficients through
    ``tf.constant`` (float32) then float64; both are scaled and cast to int64 (truncating toward
    zero). Returns (pivots[C], c0[K], c1[K]) as int64 NumPy arrays; only linear pieces.
    """
    import numpy as np

    if len(c) + 1 != len(coeffs):
        raise ValueError(f"{len(c)} pivots need {len(c) + 1} pieces, got {len(coeffs)}")
    if any(len(cf) > 2 for cf in coeffs):
        raise ValueError("only linear pieces (at most 2 coefficients each) are supported")
    piv = (np.asarray(c, np.float64) * scaling_factor).astype(np.int64)

    def enc32(v):
        return (np.asarray(v, np.float32).astype(np.float64) * scaling_factor).astype(np.int64)

    c0 = enc32([cf[0] if len(cf) > 0 else 0 for cf in coeffs])
    c1 = enc32([cf[1] if len(cf) > 1 else 0 for cf in coeffs])
    return piv, c0, c1


def _party(party):
    party = int(party)
    if party not in (0, 1, 2):
        raise ValueError(f"party must be 0, 1 or 2, got {party}")
    return party


def _bool(x, name):
    t = tf.convert_to_tensor(x)
    if t.dtype != tf.bool:
        raise TypeError(f"{name} must have dtype bool, got {t.dtype.name}")
    return t


def pivot_diff(party, x_a, x_b, pivots, name=None):
    """Sigmoid comparison set-up (TFE ``c_public - tile(x)``), party ``party``.

    Returns the party's shares (d_a, d_b) of pivots - x for all C pivots at once ([C] + shape);
    these feed ``bit_extract_setup`` (msb of d = x > pivot).
    """
    return _ops.mpc_pivot_diff(_i64(x_a, "x_a"), _i64(x_b, "x_b"), _i64(pivots, "pivots"),
                               party=_party(party), name=name)


def piece_select_and(party, msb_a, msb_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """Piece selection (TFE ``polynomial_piecewise``: ``and_(le_pivots, gt_pivots)``), any party.

    From its bool shares of msb(c - x) ([C] + shape) returns the local term z ([C+1] + shape,
    bool) of b = [~msb, 1] & [1, ~msb ^ 1]; z is sent to P_{i-1}, b's shares are (z, z_received).
    Uses one nonce step (the bool factory's zero share).
    """
    return _ops.mpc_piece_select_and(_bool(msb_a, "msb_a"), _bool(msb_b, "msb_b"), _key(key_a),
                                     _nonce(nonce_a), _key(key_b), _nonce(nonce_b),
                                     party=_party(party), name=name)


def trunc_msb0_mask_scaled_p0(x0, x1, k, key, nonce, lift=0, name=None):
    """MSB-0 truncation masking of k_j * x (TFE ``mul_public_private`` by a public vector, then
    the heuristic truncation), P0: c0 = (x0 + x1) * k_j + lift + r0, shape [K] + x.shape."""
    return _ops.mpc_trunc_msb0_mask_scaled_p0(_i64(x0, "x0"), _i64(x1, "x1"), _i64(k, "k"),
                                              _key(key), _nonce(nonce), lift=_to_signed64(lift),
                                              name=name)


def trunc_msb0_mask_scaled_p1(x2, k, r1, name=None):
    """MSB-0 truncation masking of k_j * x, P1: c1 = x2 * k_j + r1 ([K] + x.shape)."""
    return _ops.mpc_trunc_msb0_mask_scaled_p1(_i64(x2, "x2"), _i64(k, "k"), _i64(r1, "r1"),
                                              name=name)


def _step1_args(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b, nonce_b):
    return (_i64(f_a, "f_a"), _i64(f_b, "f_b"), _i64(c0, "c0"), _bool(b_a, "b_a"),
            _bool(b_b, "b_b"), _key(key_a), _nonce(nonce_a), _key(key_b), _nonce(nonce_b))


def mul_ab_step1_p0(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """TFE ``mul_ab(f, b)`` (piece values times indicators), step 1 of P0.

    P0 is the OT sender of routine 0 (a = f0 + c0) and the OT helper of routine 1. Returns
    (s_r0, m_to_p1, m_to_p2, s_r1, wc_to_p2); s_r1 also goes to P1. Nonces: N .. N+3.
    """
    return _ops.mpc_mul_ab_step1p0(*_step1_args(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b,
                                                 nonce_b), name=name)


def mul_ab_step1_p1(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """``mul_ab(f, b)`` step 1 of P1: OT helper of routine 0, OT sender of routine 1 (a = f1 + f2).

    Returns (s_r0, wc_to_p2, s_r1, m_to_p2, m_to_p0); s_r0 also goes to P0.
    """
    return _ops.mpc_mul_ab_step1p1(*_step1_args(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b,
                                                 nonce_b), name=name)


def mul_ab_step1_p2(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b, nonce_b, name=None):
    """``mul_ab(f, b)`` step 1 of P2: OT helper of both routines.

    Returns (s_r0, wc_to_p1, s_r1, wc_to_p0); s_r0 also goes to P0 and s_r1 to P1.
    """
    return _ops.mpc_mul_ab_step1p2(*_step1_args(f_a, f_b, c0, b_a, b_b, key_a, nonce_a, key_b,
                                                 nonce_b), name=name)


def mul_ab_step2_p0(b_a, b_b, s_r0_from_p1, s_r0_from_p2, s_r1, m_from_p1, wc_from_p2,
                    name=None):
    """``mul_ab(f, b)`` step 2 of P0 (OT receiver of routine 1) and the sum over the pieces:
    returns P0's two shares of the sigmoid."""
    return _ops.mpc_mul_ab_step2p0(
        _bool(b_a, "b_a"), _bool(b_b, "b_b"), _i64(s_r0_from_p1, "s_r0_from_p1"),
        _i64(s_r0_from_p2, "s_r0_from_p2"), _i64(s_r1, "s_r1"), _i64(m_from_p1, "m_from_p1"),
        _i64(wc_from_p2, "wc_from_p2"), name=name)


def mul_ab_step2_p1(b_a, b_b, s_r0, s_r1_from_p0, s_r1_from_p2, m_from_p0, wc_from_p2,
                    name=None):
    """``mul_ab(f, b)`` step 2 of P1 (OT receiver of routine 0) and the sum over the pieces."""
    return _ops.mpc_mul_ab_step2p1(
        _bool(b_a, "b_a"), _bool(b_b, "b_b"), _i64(s_r0, "s_r0"),
        _i64(s_r1_from_p0, "s_r1_from_p0"), _i64(s_r1_from_p2, "s_r1_from_p2"),
        _i64(m_from_p0, "m_from_p0"), _i64(wc_from_p2, "wc_from_p2"), name=name)


def mul_ab_step2_p2(b_a, b_b, s_r0, s_r1, m_from_p0, wc_from_p1, m_from_p1, wc_from_p0,
                    name=None):
    """``mul_ab(f, b)`` step 2 of P2 (OT receiver of both routines) and the sum over the pieces."""
    return _ops.mpc_mul_ab_step2p2(
        _bool(b_a, "b_a"), _bool(b_b, "b_b"), _i64(s_r0, "s_r0"), _i64(s_r1, "s_r1"),
        _i64(m_from_p0, "m_from_p0"), _i64(wc_from_p1, "wc_from_p1"),
        _i64(m_from_p1, "m_from_p1"), _i64(wc_from_p0, "wc_from_p0"), name=name)


# ----------------------------------------------------------------- masked-comparison msb
# cc/kernels/private_compare.h: msb(x) in three rounds, P2 the comparing party. k01, k02, k12 are
# the pairwise keys of the parties named (k01 = keys[0][1] = keys[1][0], k02 = keys[0][0] =
# keys[2][1], k12 = keys[1][1] = keys[2][0]); N01, N02, N12 their nonces (nonces[0], [2], [1]).


def _uint8(x, name):
    t = tf.convert_to_tensor(x)
    if t.dtype != tf.uint8:
        raise TypeError(f"{name} must have dtype uint8, got {t.dtype.name}")
    return t


def pc_open(party, x_a, x_b, key, nonce, name=None):
    """Round 1 (P0: key = k02, nonce = N02; P1: key = k12, nonce = N12): P0's
    a0 = x0 + x1 + rho0 (to P1), P1's a1 = x2 + rho1 (to P0; x_a, of x_b's shape, is not read)."""
    party = _party(party)
    if party == 2:
        raise ValueError("pc_open: party must be 0 or 1, got 2 (P2 does not open)")
    return _ops.mpc_pc_open(_i64(x_a, "x_a"), _i64(x_b, "x_b"), _key(key), _nonce(nonce), party=party,
                            name=name)


def pc_dealer(shape, key02, nonce02, key12, nonce12, name=None):
    """The dealer, P2: (d1, r_top): P1's Z_67 shares of the low 63 bits of r (shape + [63], uint8,
    sent to P1) and bit 63 of r (kept)."""
    return _ops.mpc_pc_dealer(tf.convert_to_tensor(shape, tf.int64), _key(key02), _nonce(nonce02),
                              _key(key12), _nonce(nonce12), name=name)


def pc_mask_p0(a_own, a_recv, key02, nonce02, key01, nonce01, name=None):
    """Round 2, P0: (d, s1, s0): its masked Z_67 vector (shape + [64], uint8, to P2) and its output
    shares s1 = c_63 ^ beta, s0."""
    return _ops.mpc_pc_mask_p0(_i64(a_own, "a_own"), _i64(a_recv, "a_recv"), _key(key02), _nonce(nonce02),
                               _key(key01), _nonce(nonce01), name=name)


def pc_mask_p1(a_own, a_recv, digits, key01, nonce01, name=None):
    """Round 2, P1: (d, s1) from the dealer's digits (shape + [63])."""
    return _ops.mpc_pc_mask_p1(_i64(a_own, "a_own"), _i64(a_recv, "a_recv"), _uint8(digits, "digits"),
                               _key(key01), _nonce(nonce01), name=name)


def pc_resolve(d0, d1, r_top, key02, nonce02, name=None):
    """Round 3, P2: (s2, s0): its output shares, s2 sent to P1."""
    return _ops.mpc_pc_resolve(_uint8(d0, "d0"), _uint8(d1, "d1"), _bool(r_top, "r_top"), _key(key02),
                               _nonce(nonce02), name=name)
