"""`dema data PATH_OR_ID`: load, validate and summarise a dataset (`--json` for machines).

    dema data hopper-medium-replay          # an id, found through the search path (dema.data.load)
    dema data mujoco/hopper/medium-v0       # a Minari id: Minari's root, downloaded by minari if missing
    dema data hopper-medium-v5 --card docs/datasets   # and its card: hopper-medium-v5.md and .png
    dema data datasets/hopper-sac-replay.hdf5 --json     # a file
    dema data --table                       # docs/DATASETS.md's tables: datasets/ and the bundled files
    dema data --table datasets --page docs/DATASETS.md   # written between the page's datasets-table markers

A file that fails validation exits with code 2 and one line naming the file, the problem and the
fix (a DataError, printed by the `dema` dispatcher). Tolerated quirks are printed as warnings.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from dema.cli_options import command_parser
from dema.data.dataset import OfflineDataset
from dema.data.episodes import return_stats
from dema.data.load import load_dataset
from dema.data.recorded_env import DATASET, dataset_env, with_reference_scores
from dema.data.validate import DataWarning, check_against_env, resolve_env
from dema.envs import parse_dataset
from dema.errors import DataError


def summary(dataset: OfflineDataset, env=None) -> dict:
    """The numbers `dema data` prints, as a JSON-able dict."""
    returns = dataset.episode_returns()
    bounds = dataset.episode_bounds()
    lengths = bounds[:, 1] - bounds[:, 0]
    last = bounds[:, 1] - 1
    out = {
        "format": dataset.format,
        "source": dataset.source,
        "env": dataset.env_name,
        "episodes": int(len(bounds)),
        "transitions": int(len(dataset)),
        "obs_dim": int(dataset.obs_dim),
        "obs_shape": list(dataset.obs_shape),
        "act_dim": int(dataset.act_dim),
        "discrete": bool(dataset.discrete),
        **return_stats(returns),
        "length_mean": float(lengths.mean()),
        "length_min": int(lengths.min()),
        "length_max": int(lengths.max()),
        "ends": {
            "terminal": int(dataset.terminals[last].sum()),
            "timeout": int((dataset.timeouts[last] & ~dataset.terminals[last]).sum()),
        },
    }
    out["metadata"] = dataset.metadata
    spec = resolve_env(dataset, env)
    if spec is not None and not dataset.discrete:
        spec, out["normalized_with"] = with_reference_scores(spec, dataset)
        out["normalized_return_mean"] = spec.normalize(out["return_mean"])
    return out


def _text(info: dict) -> str:
    obs = "x".join(map(str, info["obs_shape"])) if len(info["obs_shape"]) > 1 else str(info["obs_dim"])
    act = f"{info['act_dim']} discrete actions" if info["discrete"] else str(info["act_dim"])
    lines = [
        f"dataset      {info['source']}",
        f"format       {info['format']}" + (f"   env {info['env']}" if info["env"] else ""),
        f"episodes     {info['episodes']:,}   transitions {info['transitions']:,}",
        f"length       mean {info['length_mean']:.1f}  min {info['length_min']}  max {info['length_max']}",
        f"sizes        observation {obs}   action {act}",
        f"return       mean {info['return_mean']:.2f}  std {info['return_std']:.2f}  "
        f"min {info['return_min']:.2f}  max {info['return_max']:.2f}",
        f"episode ends {info['ends']['terminal']:,} terminal, {info['ends']['timeout']:,} timeout",
    ]
    if "normalized_return_mean" in info:
        how = "with the dataset's own reference scores" if info.get("normalized_with") == DATASET else "D4RL score"
        lines.append(f"normalised   mean return = {info['normalized_return_mean']:.1f} ({how})")
    for key, value in info["metadata"].items():
        text = str(value)
        lines.append(f"metadata     {key} = {text if len(text) <= 70 else text[:67] + '...'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "dema data",
        description=__doc__.splitlines()[0],
        epilog="Dataset ids (hopper-medium-replay, hopper-medium-v2) are looked up as <id>.hdf5, "
        "<id>.h5, <id>.pkl or <id>/ in: $DEMA_DATA_PATH (colon-separated), ./datasets, "
        "~/.dema/datasets, then the datasets bundled with dema. A Minari id (mujoco/hopper/medium-v0) is "
        "looked up in Minari's root ($MINARI_DATASETS_PATH, default ~/.minari/datasets) and downloaded by "
        "minari when missing. Formats: D4RL hdf5, Minari (hdf5, arrow), Decision-Transformer .pkl, "
        "DQN-replay folders.",
    )
    parser.add_argument("dataset", nargs="?", help="a file, a folder, or a dataset id")
    parser.add_argument("--env", default=None, help="check sizes against this environment (hopper, walker2d, ...)")
    parser.add_argument("--json", action="flag", help="print the summary as one JSON object")
    parser.add_argument("--max-transitions", type=int, default=None, help="read only the first episodes that fit in this many transitions (DQN-replay: streamed from disk)")
    parser.add_argument("--strict", action="flag", help="refuse an unfinished last episode instead of marking a timeout")
    parser.add_argument("--table", nargs="*", type=Path, metavar="FOLDER",
                        help="instead of one dataset: the table of every *.hdf5 in these folders (default: datasets/ "
                             "and the bundled ones), from the files' arrays and metadata")
    parser.add_argument("--page", type=Path, metavar="FILE",
                        help="with --table: write it between the page's datasets-table markers (docs/DATASETS.md)")
    parser.add_argument("--card", type=Path, metavar="DIR",
                        help="also write the dataset's card into DIR: NAME.md (sizes, length and return distributions, "
                             "behaviour policies, environment, checksum, command, how it differs from D4RL's) and "
                             "NAME.png (histograms of its episode returns and lengths)")
    args = parser.parse_args(argv)
    if args.table is not None or args.page is not None:
        return _table(parser, args)
    if args.dataset is None:
        parser.error("give a dataset (a file, a folder or an id), or --table")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        dataset = load_dataset(args.dataset, env=args.env, strict=args.strict, max_transitions=args.max_transitions)
        env = args.env or env_from_name(dataset, args.dataset)
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    try:  # the env spec a Minari dataset records, against dema's table: training refuses a disagreement
        dataset_env(dataset, make=False)
    except DataError as exc:
        notes.append(f"{exc}; `dema train` refuses this dataset")
    info = summary(dataset, env)
    if args.json:
        info["warnings"] = notes
        print(json.dumps(info, default=_json_default))
    else:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        print(_text(info))
    if args.card is not None:
        md, png = _card(dataset, args.dataset, args.card, env)
        print(f"card: {md} and {png}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _card(dataset: OfflineDataset, text: str, folder: Path, env):
    """The dataset's card (dema.data.card), normalised as `dema train` would score it."""
    from dema.data.card import write_card

    spec = resolve_env(dataset, env) or parse_dataset(str(text)).env
    references = None
    if spec is not None:
        spec, references = with_reference_scores(spec, dataset)
    return write_card(dataset, text, folder, spec, references)


def _table(parser: argparse.ArgumentParser, args) -> int:
    from dema.data.tables import BEGIN, DEFAULT_FOLDERS, END, dataset_table
    from dema.errors import ConfigError
    from dema.files import write_between_markers

    if args.table is None:
        parser.error("--page goes with --table (the table to write)")
    if args.dataset is not None:
        parser.error(f"give a dataset ({args.dataset}) or --table FOLDER ..., not both")
    if args.page is not None and not args.page.is_file():
        raise ConfigError(f"--page {args.page}: no such file; give the page that holds the {BEGIN} ... {END} lines")
    text, count = dataset_table(args.table or DEFAULT_FOLDERS)
    if args.page is None:
        print(text)
    elif write_between_markers(args.page, BEGIN, END, text.split("\n")):
        print(f"updated {args.page} ({count} files)")
    else:
        raise ConfigError(f"{args.page} lacks the lines {BEGIN} ... {END}; add them where the table goes")
    return 0


def env_from_name(dataset: OfflineDataset, name: str):
    """The environment `dema train` would use for a dataset that names none itself: the one its file
    name or id names (hopper-...). Its sizes and time limit are checked here, as training checks
    them before the first update; None when the name names no environment either."""
    if resolve_env(dataset, None) is not None:
        return None  # the file names its environment: load_dataset checked against it
    spec = parse_dataset(str(name)).env
    if spec is not None:
        check_against_env(dataset, spec, "named by the file name")
    return spec


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
