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
