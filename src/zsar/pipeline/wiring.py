"""The rules' params, inputs and targets, computed from the run plan and the stage table.

`workflow/rules/common.smk` builds one `Wiring` for the run and hands its methods to the
rules, so that what a job is keyed on is decided here, once, from the table's entries: a
model's identity for the side a stage uses, the settings a stage reads, and a score's
provenance chain, composed from the entries of the stages upstream of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zsar.core.method import VARIANTS, kind_weights
from zsar.core.protocol import DEFAULT_POOLING
from zsar.models.registry import (
    backend_of,
    fetch_identity,
    get_entry,
    model_identity,
    ready_path,
    side_identity,
)
from zsar.pipeline import stage_table as table
from zsar.pipeline.plan import RunPlan, parse_variant_run
from zsar.stages.scoring import interval_options

# How each side's identity is taken from a registry entry (zsar.models.registry).
IDENTITIES: dict[str, Callable[[str, Mapping[str, Any]], dict[str, Any]]] = {
    "all": model_identity,
    "video": lambda section, entry: side_identity(section, entry, "video"),
    "text": lambda section, entry: side_identity(section, entry, "text"),
    "fetch": fetch_identity,
}


def holds_field(key: table.ModelKey, section: str, field_name: str) -> bool:
    """Whether a model key's identity holds a registry field of a section's entries."""
    if key.section not in ("any", section):
        return False
    return field_name in IDENTITIES[key.side](section, {field_name: None})


def keyed_by_model_field(section: str, field_name: str) -> list[str]:
    """The stages whose key holds a registry field of a section's models: as a param of its
    own, or in the identity of the side the stage uses (the registry schema's marks)."""
    return [name for name, s in table.STAGES.items()
            if (section == "backbones" and field_name in s.model_fields)
            or any(holds_field(k, section, field_name) for k in s.models)]


def reruns_for_model_field(section: str, field_name: str) -> list[str]:
    """The stages an edit of one field of a registry entry re-runs."""
    return table.downstream(keyed_by_model_field(section, field_name))


# The sections of a score's provenance chain, in the order a record lists them.
CHAIN_ORDER = ("dataset", "frames", "backbone", "descriptors", "captions")


def setting(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value[part]
    return value


@dataclass
class Wiring:
    config: Mapping[str, Any]
    plan: RunPlan
    runs: list[str]
    lambdas: list[float]
    report_run: str
    code: Callable[[str], str]  # a workflow script's code version

    @property
    def planned(self) -> table.Planned:
        return table.Planned(self.plan, self.runs, self.report_run)

    # --- models ---------------------------------------------------------------------------

    def entry(self, section: str, name: str) -> dict[str, Any]:
        return get_entry(self.plan.registry, section, name)

    def section_of(self, name: str) -> str:
        """The registry section that holds `name` (fetch_model's wildcard names any model)."""
        for section, entries in self.plan.registry.items():
            if name in entries:
                return section
        raise KeyError(f"'{name}' is not in the model registry")

    def model_key(self, section: str, name: str, side: str = "all") -> dict[str, Any]:
        """A model's part of a cache key, for the side a stage uses (IDENTITIES), with
        that of the model it builds on (`base:`)."""
        entry = self.entry(section, name)
        key = IDENTITIES[side](section, entry)
        if entry.get("base"):
            key["base"] = self.model_key(section, entry["base"], side)
        return key

    def fetch_key(self, name: str) -> dict[str, Any]:
        """fetch_model's key: what is downloaded or built, not how it is used later."""
        section = self.section_of(name)
        return IDENTITIES["fetch"](section, self.entry(section, name))

    def pooling_of(self, backbone: str) -> str:
        return self.entry("backbones", backbone).get("pooling", DEFAULT_POOLING)

    def model_ready(self, section: str, name: str) -> list[str]:
        """Ready files of a model and of the model it builds on (ViFi-CLIP takes its token
        table from OpenAI's CLIP), so no GPU job starts before both are fetched. A backend
        that fetches nothing (a server, a file) has none."""
        entry = self.entry(section, name)
        fetched = backend_of(section, entry).fetches_weights
        flags = [str(ready_path(self.config["resources"], name))] if fetched else []
        if entry.get("base"):
            flags += self.model_ready(section, entry["base"])
        return flags

    def gpus_for(self, section: str, name: str) -> int:
        """One GPU for a backend that runs a model locally; files and servers need none."""
        return 1 if backend_of(section, self.entry(section, name)).uses_gpu else 0

    def model_files(self, section: str, name: str) -> list[str]:
        """Files the entry names that the stage reads (a caption or descriptors file)."""
        entry = self.entry(section, name)
        return backend_of(section, entry).input_files(entry)

    # --- settings ---------------------------------------------------------------------------

    def settings_of(self, stage: str) -> dict[str, Any]:
        """The config values in a stage's key, by their last name (the rule's params)."""
        return {key.rsplit(".", 1)[-1]: setting(self.config, key)
                for key in table.STAGES[stage].settings}

    def frames_settings(self) -> dict[str, Any]:
        """The frames config as the chain holds it: TSN reads no stride, and its settings
        keep the keys they had before there was a choice of sampler, so a stride edit (or
        an upgrade) under TSN re-runs nothing."""
        frames = dict(self.config["frames"])
        if frames["sampling"] == "tsn":
            del frames["stride"], frames["sampling"]
        return frames

    def frames_params(self) -> dict[str, Any]:
        """What the frames stage decodes: the frame settings and the temporal clips; the
        spatial crops are cut at the embedding stage, so changing them decodes nothing."""
        frames = {k: v for k, v in self.frames_settings().items() if k != "views"}
        return {**frames, "clips": self.config["frames"]["views"]["clips"]}

    def name_prompt(self, backbone: str) -> dict[str, Any]:
        return self.plan.name_prompts[backbone].as_params()

    def class_name_rule(self, dataset: str, backbone: str) -> dict[str, Any]:
        return self.plan.class_name_rule(dataset, backbone)

    # --- runs -----------------------------------------------------------------------------

    def variant_of(self, run: str):
        return VARIANTS[parse_variant_run(run, self.lambdas)[0]]

    def scoring_params(self, backbone: str, run: str) -> dict[str, Any]:
        """Only what changes this run's scores: the weights of the kinds it uses, λ and the
        fusion for a caption variant, top-k, the failure policy, and how the backbone's
        name templates combine."""
        name, lam = parse_variant_run(run, self.lambdas)
        variant = VARIANTS[name]
        scoring = self.config["scoring"]
        prompt = self.plan.name_prompts[backbone]
        params = {
            "variant": name,
            "weights": kind_weights(variant.kinds, scoring["weights"]),
            "topk": scoring["topk"],
            "failure_policy": self.config["failure_policy"],
            "combine": prompt.combine,
            "scale": prompt.scale,
        }
        if variant.caption:
            params.update({"lambda": lam, "fusion": scoring["fusion"]})
        return params

    def interval_params(self) -> dict[str, Any]:
        """`statistics` without alpha, which only the comparisons use."""
        return interval_options(self.config["statistics"])

    def compared_runs(self) -> list[list[Any]]:
        """[run, variant, λ] of every run in the tables' order, λ None without a caption."""
        runs = []
        for run in self.runs:
            variant, lam = parse_variant_run(run, self.lambdas)
            runs.append([run, variant, lam if VARIANTS[variant].caption else None])
        return runs

    def explain_templates(self, run: str) -> dict[str, str] | None:
        """The descriptor templates, for a variant whose explanations show descriptors."""
        uses = self.variant_of(run).uses_descriptors
        return self.config["descriptors"]["templates"] if uses else None

    # --- inputs and targets ---------------------------------------------------------------

    def reads(self, stage: str, name: str, wildcards: Mapping[str, str]) -> bool:
        """Whether a job reads an input the table makes conditional on its run's variant
        (or on the run having a captioner)."""
        when = table.STAGES[stage].inputs[name].when
        if when is None:
            return True
        if "run" in wildcards:
            return bool(getattr(self.variant_of(wildcards["run"]), when))
        return when != "caption" or self.plan.captioner is not None

    def inputs(self, stage: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """A job's inputs from other stages, as the table lists them, and for a model it
        loads, the model's ready files and the files its entry names (a caption or
        descriptors file), so that editing one re-runs the stage."""
        found: dict[str, Any] = {}
        for name, entry in table.STAGES[stage].inputs.items():
            if self.reads(stage, name, wildcards):
                found[name] = table.input_paths(stage, name, wildcards, self.planned)
            elif entry.expand:
                # A list input the job does not read is an empty list, which its script
                # reads as such (failures without a captioner); a single one is absent.
                found[name] = []
        for key in table.STAGES[stage].models:
            if key.loads:
                name = wildcards[key.wildcard]
                found["model"] = self.model_ready(key.section, name)
                found["model_files"] = self.model_files(key.section, name)
        return found

    def outputs(self, stage: str) -> dict[str, str]:
        return dict(table.STAGES[stage].outputs)

    def targets(self, stage: str, output: str, **values: list[str]) -> list[str]:
        """Every path of a stage output over the planned values of its wildcards (or the
        values given)."""
        names = table.wildcards_of(table.template(stage, output))
        return table.expand(stage, output,
                            {n: values.get(n) or self.planned.values(n) for n in names})

    def final_targets(self) -> list[str]:
        return table.final_targets(self.planned)

    # --- a score's provenance chain -------------------------------------------------------

    def chain(self, dataset: str, backbone: str, run: str) -> dict[str, Any]:
        """What made the inputs of this run's scores, for its provenance and config hash:
        one section per kind of stage upstream of it (the table's `chain`), each composed
        from those stages' entries, with their code versions."""
        wildcards = {"dataset": dataset, "backbone": backbone, "run": run}
        upstream = self._upstream("score", wildcards)
        chain = {}
        for section in CHAIN_ORDER:
            stages = [s for s in table.STAGES if s in upstream
                      and table.STAGES[s].chain == section]
            if stages:
                chain[section] = CHAIN_SECTIONS[section](self, stages, dataset, backbone)
        return chain

    def _upstream(self, stage: str, wildcards: Mapping[str, str]) -> set[str]:
        found: set[str] = set()
        pending = [table.STAGES[stage].inputs[n].stage
                   for n in table.STAGES[stage].inputs if self.reads(stage, n, wildcards)]
        while pending:
            name = pending.pop()
            if name not in found:
                found.add(name)
                pending += [i.stage for i in table.STAGES[name].inputs.values()]
        return found

    def _codes(self, stages: list[str]) -> dict[str, str]:
        return {table.STAGES[s].script: self.code(table.STAGES[s].script) for s in stages}

    def _dataset_section(self, stages, dataset, backbone) -> dict[str, Any]:
        return {"name": dataset, **self.plan.datasets[dataset].class_list_key()}

    def _frames_section(self, stages, dataset, backbone) -> dict[str, Any]:
        return {**self.frames_settings(), "code": self.code("frames")}

    def _backbone_section(self, stages, dataset, backbone) -> dict[str, Any]:
        return {
            **self.model_key("backbones", backbone),
            "name_prompt": self.name_prompt(backbone),
            "class_names": self.class_name_rule(dataset, backbone),
            # No embedding's key (it changes none), but the record's: it marks a result not
            # zero-shot, so an edit re-scores that backbone (cheap) and re-makes the tables.
            "trained_on": self.entry("backbones", backbone).get("trained_on", []),
            "code": self._codes(stages),
        }

    def _model_section(self, stages, dataset, backbone) -> dict[str, Any]:
        """A section named by the model its stages share (the LLM, the captioner), with
        their settings."""
        (key,) = {k for s in stages for k in table.STAGES[s].models
                  if k.section != "backbones"}
        name = self.planned.fixed(key.wildcard)
        section: dict[str, Any] = {key.wildcard: self.model_key(key.section, name)}
        for stage in stages:
            section.update(self.settings_of(stage))
        section["code"] = self._codes(stages)
        return section


CHAIN_SECTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "dataset": Wiring._dataset_section,
    "frames": Wiring._frames_section,
    "backbone": Wiring._backbone_section,
    "descriptors": Wiring._model_section,
    "captions": Wiring._model_section,
}
