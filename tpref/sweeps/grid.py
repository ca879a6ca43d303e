"""The grid of a sweep: ``--grid`` / ``--seeds`` parsing, validation against
:class:`~tpref.train.RunConfig`'s fields, and the cells (one training run each) it spans."""

import dataclasses
import itertools
import math
import typing

from ..train import RunConfig


class SweepError(ValueError):
    """A bad sweep specification (grid, seeds, a cell's configuration, the output directory)."""



# ----------------------------------------------------------------------------------------------
# grid specification


def run_config_field_types():
    """RunConfig field -> (python type, whether None is allowed)."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in dataclasses.fields(RunConfig):
        t = hints[f.name]
        args = typing.get_args(t)
        optional = type(None) in args
        if optional:
            t = next(a for a in args if a is not type(None))
        out[f.name] = (t, optional)
    return out


def _parse_value(field, text, kind, optional):
    s = text.strip()
    if optional and s.lower() == "none":
        return None
    if kind is bool:
        if s.lower() in ("true", "1", "yes"):
            return True
        if s.lower() in ("false", "0", "no"):
            return False
        raise SweepError(f"--grid {field}: {text!r} is not a boolean (true/false)")
    if kind is int:
        try:
            return int(s)
        except ValueError:
            raise SweepError(f"--grid {field}: {text!r} is not an integer") from None
    if kind is float:
        try:
            v = float(s)
        except ValueError:
            raise SweepError(f"--grid {field}: {text!r} is not a number") from None
        if not math.isfinite(v):
            raise SweepError(f"--grid {field}: {text!r} is not a finite number")
        return v
    if not s:
        raise SweepError(f"--grid {field}: empty value")
    return s


def parse_grid(specs):
    """Grid from ``FIELD=V1,V2,...`` strings (the ``--grid`` flags) -> {field: [values]}.

    Values are converted to the RunConfig field's type. Raises :class:`SweepError` naming
    the spec for a missing ``=``, an unknown or repeated field, no values, an empty value, a
    value that does not parse or a repeated value.
    """
    types = run_config_field_types()
    grid = {}
    for spec in specs:
        field, eq, values = str(spec).partition("=")
        field = field.strip().replace("-", "_")
        if not eq or not field:
            raise SweepError(f"--grid {spec!r}: expected FIELD=V1,V2,... (e.g. lr=1e-3,1e-2)")
        if field not in types:
            raise SweepError(f"--grid {spec!r}: unknown field {field!r}; fields: "
                             f"{', '.join(sorted(types))}")
        if field in grid:
            raise SweepError(f"--grid {spec!r}: field {field!r} given twice")
        texts = values.split(",")
        if not values.strip():
            raise SweepError(f"--grid {spec!r}: field {field!r} has no values")
        if any(not t.strip() for t in texts):
            raise SweepError(f"--grid {spec!r}: empty value in the list for {field!r}")
        kind, optional = types[field]
        grid[field] = [_parse_value(field, t, kind, optional) for t in texts]
    return check_grid(grid)


def check_grid(grid):
    """Validate a grid given as a dict {field: values} (the Python API); return a copy."""
    types = run_config_field_types()
    out = {}
    for field, values in dict(grid).items():
        if field not in types:
            raise SweepError(f"grid: unknown field {field!r}; fields: {', '.join(sorted(types))}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise SweepError(f"grid: field {field!r} has no values")
        kind, optional = types[field]
        converted = []
        for v in values:
            if isinstance(v, str) and kind is not str:
                v = _parse_value(field, v, kind, optional)
            elif isinstance(v, (int, float)) and kind is float and not isinstance(v, bool):
                v = float(v)
            converted.append(v)
        seen = set()
        for v in converted:
            if v in seen:
                raise SweepError(f"grid: value {v!r} of {field!r} repeated")
            seen.add(v)
        out[field] = converted
    return out


def parse_seeds(text):
    """``"0,1,2"`` or ``"0-4"`` -> [0, 1, 2] / [0, 1, 2, 3, 4], or a SweepError."""
    text = str(text).strip()
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(p) for p in text.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(p) for p in text.split(",")]
    except ValueError:
        raise SweepError(f"--seeds {text!r}: expected integers like 0,1,2 or a range 0-4") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SweepError(f"--seeds {text!r}: expected distinct non-negative integers")
    return seeds


# ----------------------------------------------------------------------------------------------
# cells


def _fmt(v):
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: its grid values (seed last), configuration and directory name."""

    values: tuple              # ((field, value), ...) in grid order, ("seed", s) last
    config: RunConfig
    name: str


def make_cells(grid, base=None, seeds=None):
    """The cells of ``grid`` (field -> values) on ``base`` (RunConfig or dict of fields).

    ``seeds`` (a list) adds a seed axis; a grid may instead hold ``seed`` itself, not both.
    Every cell's configuration is validated here; errors name the cell.
    """
    grid = check_grid(grid)
    base = dataclasses.asdict(base) if isinstance(base, RunConfig) else dict(base or {})
    if seeds is not None:
        if "seed" in grid:
            raise SweepError("seed given both in the grid and as seeds; use one")
        grid["seed"] = list(seeds)
    elif "seed" not in grid:
        grid["seed"] = [base.get("seed", 0)]
    else:
        grid["seed"] = grid.pop("seed")             # seed last
    fields = list(grid)
    cells = []
    for combo in itertools.product(*(grid[f] for f in fields)):
        values = tuple(zip(fields, combo))
        name = "_".join(f"{f}-{_fmt(v)}" for f, v in values).replace("/", "-").replace(" ", "")
        try:
            config = RunConfig(**{**base, **dict(values)})
            config.validate()
        except (TypeError, ValueError) as err:
            raise SweepError(f"cell {name}: {err}") from None
        cells.append(Cell(values, config, name))
    if len({c.name for c in cells}) != len(cells):
        raise SweepError("two cells would share a directory name (values that print alike)")
    return cells
