"""The smoke check of a stack (`make smoke`, CI on the newest one): the build matches the running TF,
`tfe-accel info` names the stack and its shims, and a secure matmul, sigmoid and LR training step
under AcceleratedABY3 agree with NumPy within the fixed-point bound."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

import tfe_accel
from conftest import run_python


def test_build_matches_running_tensorflow():
    built = tfe_accel.read_build_info()["tf_version"]
    assert built.split(".")[:2] == tf.__version__.split(".")[:2], (built, tf.__version__)


def test_info_json_names_the_stack_and_shims():
    bin_ = os.path.join(os.path.dirname(sys.executable), "tfe-accel")
    r = subprocess.run([bin_, "info", "--json"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout[r.stdout.index("{"):])
    st = info["stack"]
    assert st["packages"]["tensorflow"] == tf.__version__ and st["packages"]["tf-encrypted"] == "0.9.1"
    assert st["python"] == ".".join(map(str, sys.version_info[:3]))
    for d in st["compat_shims"].values():
        assert not d["active"] or d["applied"], st["compat_shims"]


def test_secure_matmul_sigmoid_and_training_step():
    code = r'''
import numpy as np, tf_encrypted as tfe, tfe_accel
from tfe_accel.protocol import AcceleratedABY3
tfe.set_protocol(AcceleratedABY3())
rng = np.random.default_rng(7)
xv, wv = rng.uniform(-1, 1, (32, 10)), rng.uniform(-0.5, 0.5, (10, 1))
yv = (rng.uniform(size=(32, 1)) < 0.5).astype(float)
x, w = tfe.define_private_variable(xv), tfe.define_private_variable(wv)
y = tfe.define_private_variable(yv)
mm = tfe.matmul(x, w).reveal().to_native().numpy()
sg = tfe.sigmoid(tfe.matmul(x, w)).reveal().to_native().numpy()
@tfe_accel.function
def step(x, y, w):
    p = tfe.sigmoid(tfe.matmul(x, w))
    g = tfe.matmul(tfe.transpose(x), p - y) * (0.1 / 32)
    return w - g
w1 = step(x.read_value(), y.read_value(), w.read_value()).reveal().to_native().numpy()
z = xv @ wv
p5 = np.clip(0.5 + 0.212 * z, 0, 1)  # 5-piece sigmoid on |z| < 1.6: its middle piece
ref_w1 = wv - xv.T @ (np.where(np.abs(z) < 1.6, p5, 1 / (1 + np.exp(-z))) - yv) * (0.1 / 32)
print("ERR", float(abs(mm - z).max()), float(abs(sg - 1 / (1 + np.exp(-z))).max()), float(abs(w1 - ref_w1).max()))
'''
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    mm_err, sg_err, step_err = (float(v) for v in r.stdout.split("ERR ", 1)[1].split())
    assert mm_err < 1e-3          # 16 fractional bits, 10 products
    assert sg_err < 0.05          # the 5-piece approximation's max error is 0.040
    assert step_err < 5e-3        # the sigmoid's pieces as above plus fixed-point rounding
