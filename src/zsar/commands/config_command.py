"""`zsar config`: the effective config of a run, or which published numbers it will be set
beside (`--check-reference`).

A command above the config, the planner and the references, kept out of zsar.pipeline.config so that
the modules the config is read by never import them back.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import yaml

from zsar.commands.checkout import add_workdir_argument, user_paths_then_workdir
from zsar.core.references import ReferenceFileError, load_references, reference_preflight
from zsar.pipeline.config import ConfigError, command_line_values, load_config
from zsar.pipeline.plan import resolve_run
from zsar.stages.manifest import raw_class_names


def add_arguments(parser) -> None:
    parser.add_argument(
        "configfiles", nargs="*", default=["config/config.yaml"], metavar="CONFIG",
        help="config files, merged in order as --configfile merges them "
        "(default: config/config.yaml)",
    )
    parser.add_argument(
        "--config", nargs="+", default=[], metavar="KEY=VALUE",
        help="top-level values over the files, as snakemake --config sets them "
        "(data_root=/data); each VALUE is read as YAML",
    )
    add_workdir_argument(parser)
    parser.add_argument(
        "--check-reference", action="store_true",
        help="instead, say which published numbers (reference_results) the planned run will "
        "be set beside, and for each it will not, the protocol fields that differ",
    )


def run(args) -> int:
    """Print the effective config (the files merged, every default filled in) as YAML."""
    try:
        files = user_paths_then_workdir(args.configfiles, args.workdir)
        config = load_config(files, command_line_values(args.config))
        if args.check_reference:
            print("\n".join(check_reference(config)))
            return 0
    except (ConfigError, OSError) as err:
        print(f"zsar config: error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return 0


def check_reference(config: dict[str, Any], config_dir: str | os.PathLike = "config") -> list[str]:
    """The reference preflight of a config (zsar.core.references.reference_preflight), the
    class names read from the dataset's lists where they can be."""
    # Which captioner and LLM a run names changes no baseline: their demo stand-ins are
    # not refused here (the run itself still refuses them on a benchmark).
    plan = resolve_run({**config, "allow_demo_models": True}, config_dir)
    try:
        references = load_references(config["reference_results"])
    except ReferenceFileError as err:
        raise ConfigError(f"reference_results: {err}") from None
    names = {name: raw_class_names(data) for name, data in plan.datasets.items()}
    return reference_preflight(plan, config["frames"], references, names)
