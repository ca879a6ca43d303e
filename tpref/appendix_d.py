"""The paper's Appendix D as one command: ``tpref reproduce appendix-d``.

Appendix D compares, on pixel MNIST (batch 16, hidden 100, 40 000 iterations in the paper):

- linearized TP (Eq. 2) with the regularized inverse, gamma_theta 0.1, gamma_h 1e-4, r 1;
- difference TP with the same regularized inverse and the same step sizes ("dtp");
- difference TP with a learned inverse, Manchev & Spratling's TPTT ("dtp_learned"):
  gamma_theta 1e-2, gamma_h 1e-7, reverse lr 1e-8, noise 0.1,

and reports that "the first-order approximation (2) leads to slightly better results". The
command also runs TPTT on temporal order (T = 60) against BP and TP (the task of Manchev &
Spratling's own comparison), with TPTT's synthetic step sizes. Step sizes come from
``tpref.presets``; ``--iterations`` shortens the runs (the panels' presets hold the paper's
counts). Layout: ``<out>/<panel>/<method>/`` per run (tpref.experiments.run_panel), each
panel's ``table.md`` and ``compare.png``, and ``<out>/appendix-d.png``.
"""

import os

#: The panels of ``tpref reproduce appendix-d`` and the methods each one trains.
PANELS = {
    "mnist": ("tp", "dtp", "dtp_learned"),
    "temporal-order-60": ("bp", "tp", "dtp_learned"),
}


def reproduce(args, overrides):
    """Run (or, with ``args.plot_only``, redraw) the Appendix D panels; return the exit status.

    ``overrides`` are RunConfig fields from the command line (None: the preset's).
    """
    from .experiments import panel_configs, panel_report, run_panel
    from .plotting import plot_comparison, plot_figure
    from .run_io import check_output_dir

    if getattr(args, "seeds", None) or getattr(args, "quick", False):
        raise ValueError("reproduce appendix-d runs one seed (--seed) and has no --quick; use "
                         "--iterations to shorten it")
    panels = tuple(PANELS)
    if args.panels:
        panels = tuple(args.panels.split(","))
        for p in panels:
            if p not in PANELS:
                raise ValueError(f"unknown panel {p!r} of appendix-d; choose from {tuple(PANELS)}")
    check_output_dir(args.out)
    overrides = dict(overrides, iterations=args.iterations)
    overrides.pop("length", None)
    if not args.plot_only:
        configs = {p: panel_configs(p, PANELS[p], **overrides) for p in panels}
        for p in panels:                     # every panel's data, before any training
            configs[p][0].make_task()
        for p in panels:
            run_panel(p, configs[p], args.out, jobs=args.jobs)
    else:
        for p in panels:
            table = panel_report(os.path.join(args.out, p), PANELS[p])
            if table:
                print(table)
                print(f"plot: {plot_comparison(os.path.join(args.out, p), PANELS[p], title=p)}")
    methods = tuple(dict.fromkeys(m for p in panels for m in PANELS[p]))
    png = plot_figure(args.out, panels, methods, os.path.join(args.out, "appendix-d.png"),
                      titles={"mnist": "MNIST: TP vs DTP (regularized vs learned inverse)",
                              "temporal-order-60": "temporal order T=60: BP, TP, TPTT"})
    print(f"figure: {png}")
    return 0
