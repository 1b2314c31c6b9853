"""Generate the pinned estimator catalogue from the installed scikit-learn, XGBoost and LightGBM.

    python tools/gen_estimators.py           # writes compiler/runtime/estimators.json
    python tools/gen_estimators.py --check   # exits 1 when the committed file is stale

The catalogue (format "specops.estimators/v1") is the allow-list of estimators a Model may
name and the hyperparameters each takes: `specops validate` checks specs against it with the
standard library only (it never imports these libraries), and the step runtime imports only
the classes it lists (a spec value never names code to import).

- scikit-learn: every classifier and regressor `sklearn.utils.all_estimators` lists, keyed by
  its public import path (`sklearn.linear_model.Ridge`). Parameters and their types come from
  the estimator's own `_parameter_constraints` (what sklearn validates at fit time).
- XGBoost and LightGBM: their scikit-learn wrappers (`xgboost.XGBRegressor`, ...). Parameters
  are the constructor's named arguments; LightGBM also takes its core parameters (the names
  in its own alias table) as keyword arguments. Aliases map the libraries' native names
  (`eta`, `num_round`, LightGBM's aliases) onto the wrapper's (`learning_rate`, `n_estimators`).

A parameter's `types` is the JSON types it accepts ("int", "float", "str", "bool", "null"),
or ["any"] where the library takes objects a spec cannot write; `options` lists the strings a
str-only parameter takes. Output is deterministic (sorted keys, indent 2, trailing newline).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

FORMAT = "specops.estimators/v1"
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "compiler" / "runtime" / "estimators.json"

# XGBoost's native names (its learning API and the SageMaker built-in algorithm's
# hyperparameters) for the scikit-learn wrapper's arguments.
XGBOOST_ALIASES = {
    "eta": "learning_rate", "num_round": "n_estimators", "num_boost_round": "n_estimators",
    "nrounds": "n_estimators", "lambda": "reg_lambda", "alpha": "reg_alpha", "min_split_loss": "gamma",
    "max_leaves_count": "max_leaves", "nthread": "n_jobs",
}
# LightGBM core parameter -> the scikit-learn wrapper's name for it, where they differ.
LIGHTGBM_CORE_TO_SKLEARN = {
    "num_iterations": "n_estimators", "bagging_fraction": "subsample", "bagging_freq": "subsample_freq",
    "feature_fraction": "colsample_bytree", "lambda_l1": "reg_alpha", "lambda_l2": "reg_lambda",
    "min_gain_to_split": "min_split_gain", "min_sum_hessian_in_leaf": "min_child_weight",
    "min_data_in_leaf": "min_child_samples", "num_threads": "n_jobs", "boosting": "boosting_type",
    "bin_construct_sample_cnt": "subsample_for_bin", "seed": "random_state",
}
# Set by the train step itself, never by a spec.
RESERVED = ("random_state",)


def _sklearn_types(constraints: list) -> tuple[list[str], list[str] | None]:
    from numbers import Integral, Real

    from sklearn.utils._param_validation import Interval, Options, StrOptions

    types: set[str] = set()
    options: list[str] | None = None
    for c in constraints:
        if c is None:
            types.add("null")
        elif isinstance(c, StrOptions):
            types.add("str")
            options = sorted((options or []) + [o for o in c.options if isinstance(o, str)])
        elif isinstance(c, Options):
            types.add("any")
        elif isinstance(c, Interval):
            types.update(("int",) if c.type.__name__ == "Integral" else ("int", "float"))
        elif c in ("boolean",):
            types.add("bool")
        elif c is bool:
            types.add("bool")
        elif c is int or c is Integral:
            types.add("int")
        elif c is float or c is Real:
            types.update(("int", "float"))
        elif c == "verbose":
            types.update(("int", "bool"))
        elif c is str:
            types.add("str")
            options = None
        elif c == "random_state":
            types.update(("int", "null"))
        else:
            types.add("any")
    if "any" in types:
        return ["any"], None
    return sorted(types), options if types == {"str"} or types == {"str", "null"} else None


def _annotation_types(annotation: Any) -> list[str]:
    """JSON types from a constructor annotation (Optional[float], Union[str, Callable], ...)."""
    if isinstance(annotation, str):
        text = annotation
    else:
        text = repr(annotation)
    names = {"int": ("int",), "float": ("int", "float"), "str": ("str",), "bool": ("bool",),
             "None": ("null",), "NoneType": ("null",)}
    args = typing.get_args(annotation) if not isinstance(annotation, str) else ()
    if args:
        out: set[str] = set()
        for a in args:
            name = getattr(a, "__name__", repr(a))
            if name not in names:
                return ["any"]
            out.update(names[name])
        return sorted(out)
    name = getattr(annotation, "__name__", text)
    return sorted(names[name]) if name in names else ["any"]


def sklearn_entries() -> dict[str, dict]:
    from sklearn.utils import all_estimators

    out = {}
    for kind in ("classifier", "regressor"):
        for name, cls in all_estimators(type_filter=kind):
            public = ".".join(cls.__module__.split(".")[:2])
            try:
                if getattr(importlib.import_module(public), name) is not cls:
                    continue
            except (ImportError, AttributeError):
                continue
            path = f"{public}.{name}"
            entry = out.setdefault(path, {"library": "scikit-learn", "tasks": [], "params": {}, "aliases": {}})
            entry["tasks"] = sorted(set(entry["tasks"]) | {"classification" if kind == "classifier" else "regression"})
            constraints = getattr(cls, "_parameter_constraints", {})
            for p in sorted(cls().get_params(deep=False) if _constructible(cls) else inspect.signature(cls).parameters):
                types, options = _sklearn_types(constraints.get(p, [])) if p in constraints else (["any"], None)
                entry["params"][p] = {"types": types, **({"options": options} if options else {})}
    return out


def _constructible(cls: type) -> bool:
    try:
        cls()
        return True
    except TypeError:  # meta-estimators need an estimator argument
        return False


def xgboost_entries() -> dict[str, dict]:
    import xgboost

    hints = inspect.signature(xgboost.XGBModel.__init__).parameters
    params = {}
    for name, p in hints.items():
        if name in ("self", "kwargs"):
            continue
        params[name] = {"types": _annotation_types(p.annotation)}
    out = {}
    for cls, task in (("XGBClassifier", "classification"), ("XGBRegressor", "regression")):
        out[f"xgboost.{cls}"] = {"library": "xgboost", "tasks": [task], "params": params,
                                  "aliases": dict(sorted(XGBOOST_ALIASES.items()))}
    return out


def lightgbm_entries() -> dict[str, dict]:
    import lightgbm
    from lightgbm.basic import _ConfigAliases

    sig = inspect.signature(lightgbm.LGBMModel.__init__).parameters
    params = {name: {"types": _annotation_types(p.annotation)} for name, p in sig.items()
              if name not in ("self", "kwargs")}
    aliases: dict[str, str] = {}
    table = _ConfigAliases._get_all_param_aliases()
    for core, names in sorted(table.items()):
        canonical = LIGHTGBM_CORE_TO_SKLEARN.get(core, core)
        if canonical not in params:
            params[canonical] = {"types": ["any"]}  # a core parameter, passed through as a keyword
        for alias in sorted(set(names) | {core}):
            if alias != canonical and alias not in params:
                aliases[alias] = canonical
    out = {}
    for cls, task in (("LGBMClassifier", "classification"), ("LGBMRegressor", "regression")):
        out[f"lightgbm.{cls}"] = {"library": "lightgbm", "tasks": [task], "params": dict(sorted(params.items())),
                                   "aliases": dict(sorted(aliases.items()))}
    return out


def build() -> dict[str, Any]:
    import lightgbm
    import sklearn
    import xgboost

    estimators = {**sklearn_entries(), **xgboost_entries(), **lightgbm_entries()}
    for e in estimators.values():
        for r in RESERVED:
            e["params"].pop(r, None)
        e["aliases"] = {a: c for a, c in e["aliases"].items() if c in e["params"]}
    return {
        "format": FORMAT,
        "versions": {"scikit-learn": sklearn.__version__, "xgboost": xgboost.__version__,
                     "lightgbm": lightgbm.__version__},
        "estimators": dict(sorted(estimators.items())),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = ap.parse_args(argv)
    data = (json.dumps(build(), indent=2, sort_keys=True) + "\n").encode()
    if args.check:
        if not OUT.is_file() or OUT.read_bytes() != data:
            print(f"{OUT.relative_to(REPO)} is stale: run python tools/gen_estimators.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_bytes(data)
    print(f"wrote {OUT.relative_to(REPO)}: {len(json.loads(data)['estimators'])} estimators")
    return 0


if __name__ == "__main__":
    sys.exit(main())
