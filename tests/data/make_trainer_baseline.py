"""Weights trained by the trainer at commit f37c3b4 (before the compiled trainer), for the
'unchanged results' test (tests/test_trainer_mpc.py). Regenerate from a checkout of that commit with
its built op library: PYTHONPATH=<checkout>/python python tests/data/make_trainer_baseline.py 3
(the small cases use 20 fractional bits: their run-to-run noise at 16 bits hides differences)."""
import json, os, sys, subprocess
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tfe_accel
from tfe_accel.data import load_golub, split_owners, synthetic
from tfe_accel.models import SecureLogisticRegression, TrainConfig
CASES = {
  "golub_default": dict(data="golub", owners=2, split="horizontal", cfg=dict(epochs=20)),
  "small_minibatch_l2_public_3piece": dict(data=(60, 40, 18), owners=2, split="horizontal",
      cfg=dict(epochs=6, learning_rate=0.1, batch_size=16, l2=0.01, class_weight="public", sigmoid="3-piece", reveal_loss=True,
               fractional_bits=20)),
  "small_vertical_nostd_balanced": dict(data=(50, 30, 20), owners=2, split="vertical",
      cfg=dict(epochs=5, learning_rate=0.1, standardize=False, fractional_bits=20)),
}
def owners_for(case):
    if case["data"] == "golub":
        x, y, g = load_golub()
    else:
        x, y, g = synthetic(case["data"], seed=3, informative=8, effect=1.0)
    return split_owners(x, y, g, case["owners"], case["split"], seed=1)
# the commit of the tfe_accel package that trains (the checkout on PYTHONPATH), not of the cwd
pkg = os.path.dirname(os.path.abspath(tfe_accel.__file__))
out = {"commit": subprocess.check_output(["git", "-C", pkg, "rev-parse", "HEAD"], text=True).strip(),
       "package": pkg, "cases": {}}
for name, case in CASES.items():
    runs = []
    for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2):
        res = SecureLogisticRegression(TrainConfig(**case["cfg"]), protocol="accelerated").fit(owners_for(case), case["split"])
        runs.append({"weights": res.weights.tolist(), "bias": res.bias, "losses": res.losses})
    out["cases"][name] = {"case": {k: (list(v) if isinstance(v, tuple) else v) for k, v in case.items()}, "runs": runs}
    print(name, "done", flush=True)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer_baseline_f37c3b4.json"), "w") as f:
    json.dump(out, f)
