"""``tfe-accel bench``: op-level speedups of tfe-accel over stock TF Encrypted.

Sections: ``kernels`` (ring matmul and protocol-step kernels: ``kernel_matmul``, ``kernel_steps``),
``protocol`` (every routed secure op, stock ABY3 vs AcceleratedABY3), ``training`` (secure LR step, iterations/s, epoch), ``gpu``.
Method: warm-up, >= 5 interleaved runs, median and IQR, fixed seeds, machine facts recorded.
``suite.run`` writes results.json, PNG plots and README_section.md; ``report.update_readme``
replaces the README block between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
"""
SECTIONS = ("kernels", "protocol", "training", "gpu")


def run(section="all", quick=False, output=None, **kwargs):
    from . import suite

    return suite.run(section, quick=quick, output=output, **kwargs)


def update_readme(readme_path="README.md", section="bench/results/README_section.md"):
    from .report import update_readme as _update

    return _update(readme_path, section)


__all__ = ["SECTIONS", "run", "update_readme"]
