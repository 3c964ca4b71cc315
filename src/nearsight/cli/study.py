"""``nearsight study CONFIG.yaml [--set KEY=VALUE ...]``: run, analyze and summarize a coarsening study.

``--set`` overrides config keys (dotted for sections), e.g. a smoke run of the full config:
``nearsight study configs/studies/chiral_coarsening.yaml --set size=24 replicas=2 steps=300 out=out/smoke``.
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("study", help="run an ML-LLG coarsening study from a config and write its summary")
    p.add_argument("config", help="study YAML (configs/studies/*.yaml)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. size=32 replicas=2 steps=200 analysis.n_boot=200")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis.study import load_study, run_study
    cfg = load_study(args.config, args.overrides)
    res = run_study(cfg)
    print(open(res["summary"]).read().split("## Last frame")[0])
    return 0
