"""Class descriptors: attributes, descriptions and a hierarchy per class, written by an LLM.

For each class an LLM is asked (prompt set `config/prompts/descriptors-*.yaml`) for strict
JSON with 5-10 visual `attributes`, 1-3 `descriptions` and a 2-4 level `hierarchy` from a
root category to the class. Answers go through three steps:

- parse: tolerant of code fences and of prose around the JSON (`extract_json_object`);
- check: the `answer` definition of `schemas/descriptors.schema.json` (`check_answer`);
- repair: an invalid answer is sent back with the validator's message, up to K times; after
  that the class falls back to its name: `fallback: true`, a `reason`, and empty lists, so the
  scoring represents it by its name prompt alone (an empty kind contributes nothing).

Backends are a registry (`BACKENDS`): a local `transformers` causal LM, an `openai`-compatible
endpoint (the client in `zsar.models.chat`, shared with captioning), and `file` for curated
descriptors. The stage writes `results/{dataset}/descriptors/{llm}.json`, checked against the
whole-file schema before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from zsar.data.descriptor_records import (
    KIND_FIELDS,
    MAX_ERROR_TEXT,
    descriptors_document,
    fallback_record,
    load_curated,
    schema_errors,
    truncate,
    validate_descriptors,
)
from zsar.data.descriptor_sources import Source, describe_from_sources
from zsar.data.io import write_json
from zsar.data.provenance import provenance
from zsar.models.devices import preferred_device
from zsar.models.registry import Backend, model_dir

logger = logging.getLogger(__name__)

# A rejected answer is quoted back in the repair prompt; past this it only costs context.
MAX_QUOTED_ANSWER = 2000

Messages = list[dict[str, str]]


# --- Parsing and checking one answer (pure) ----------------------------------------------

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.DOTALL)


def extract_json_object(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The first JSON object in an LLM answer, as (object, None) or (None, error).

    Fenced blocks are tried first, then the whole text; in each, the object is the first
    `{` from which a complete JSON object decodes, so prose before or after it is ignored.
    """
    if text is None or not text.strip():
        return None, "the answer is empty"
    decoder = json.JSONDecoder()
    first_error = None
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        for start in (i for i, char in enumerate(candidate) if char == "{"):
            try:
                obj, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError as err:
                first_error = first_error or f"invalid JSON: {err.msg} at char {err.pos}"
                continue
            if isinstance(obj, dict):
                return obj, None
    return None, first_error or "no JSON object found in the answer"


def _unwrap(obj: dict[str, Any]) -> dict[str, Any]:
    """Accept {"<class>": {...}}, a common way for a model to wrap the requested object."""
    if "attributes" not in obj and len(obj) == 1:
        (inner,) = obj.values()
        if isinstance(inner, dict) and "attributes" in inner:
            return inner
    return obj


def _clean_text(value: Any) -> Any:
    # One line per text, no stray whitespace: these strings go straight to a text encoder.
    return " ".join(value.split()) if isinstance(value, str) else value


def check_answer(obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A valid descriptor record from a parsed answer, or (None, the validator's message)."""
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    obj = _unwrap(obj)
    cleaned = {
        field: [_clean_text(v) for v in obj[field]] if isinstance(obj.get(field), list)
        else obj.get(field)
        for field in KIND_FIELDS.values()
        if field in obj
    }
    errors = schema_errors(cleaned, "answer")
    if errors:
        return None, truncate("; ".join(errors[:5]), MAX_ERROR_TEXT)
    record = {field: cleaned[field] for field in KIND_FIELDS.values()}
    return {**record, "fallback": False, "reason": None}, None


def parse_answer(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Parse and check one answer: (record, None) if it is valid, else (None, error)."""
    obj, error = extract_json_object(text)
    if obj is None:
        return None, error
    return check_answer(obj)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def leaf_names_class(hierarchy: Sequence[str], display: str) -> bool:
    """Whether the hierarchy's last level shares a word with the class name (a soft check:
    a leaf like "yo-yo tricks" for "YoYo" is fine, so a mismatch is only logged)."""
    if not hierarchy:
        return False
    leaf = hierarchy[-1].lower().replace(" ", "").replace("-", "")
    name = display.lower().replace(" ", "").replace("-", "")
    return bool(_words(hierarchy[-1]) & _words(display)) or name in leaf or leaf in name


# --- Prompts ------------------------------------------------------------------------------


def _fill(template: str, **values: str) -> str:
    # Plain replacement, not str.format: templates may contain JSON braces.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


@dataclass(frozen=True)
class PromptSet:
    """A versioned prompt set: system text, per-class request, worked example, repair."""

    version: str
    system: str
    user: str
    repair: str
    example_class: str
    example_answer: dict[str, Any]

    @classmethod
    def from_yaml(cls, path: str | Path) -> PromptSet:
        data = yaml.safe_load(Path(path).read_text()) or {}
        missing = [k for k in ("version", "system", "user", "repair", "example") if k not in data]
        if missing:
            raise ValueError(f"{path}: prompt set lacks {missing}")
        example = data["example"]
        record, error = check_answer(example.get("answer"))
        if record is None:  # the model imitates the example, so it must itself be valid
            raise ValueError(f"{path}: the worked example does not pass the schema: {error}")
        return cls(
            version=str(data["version"]),
            system=data["system"],
            user=data["user"],
            repair=data["repair"],
            example_class=example["class"],
            example_answer=example["answer"],
        )

    def messages(self, display: str) -> Messages:
        """The first request for one class: system, the worked example, then the class."""
        example_json = json.dumps(self.example_answer, ensure_ascii=False)
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": _fill(self.user, **{"class": self.example_class})},
            {"role": "assistant", "content": example_json},
            {"role": "user", "content": _fill(self.user, **{"class": display})},
        ]

    def repair_messages(self, display: str, previous: str, error: str) -> Messages:
        """The first request, the rejected answer, and a request to correct it.

        Always built from the first request, so repeated repairs do not grow the context.
        """
        quoted = truncate(previous.strip(), MAX_QUOTED_ANSWER) or "(empty)"
        repair = _fill(self.repair, **{"class": display, "error": error, "previous": quoted})
        return [
            *self.messages(display),
            {"role": "assistant", "content": quoted},
            {"role": "user", "content": repair},
        ]


# --- Classes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassName:
    raw: str  # the dataset's class name: the key in the output
    display: str  # normalised words: what the LLM is asked about


def read_class_names(classes_path: str | Path) -> list[ClassName]:
    """The distinct classes of classes.parquet over all splits, sorted by raw name."""
    table = pq.read_table(classes_path, columns=["name", "display_name"])
    names: dict[str, str] = {}
    for raw, display in zip(table["name"].to_pylist(), table["display_name"].to_pylist(),
                            strict=True):
        names.setdefault(raw, display or raw)
    return [ClassName(raw, names[raw]) for raw in sorted(names)]


# --- The generate / check / repair loop -----------------------------------------------------


class Reply(Protocol):
    text: str | None
    error: str | None


@dataclass
class Completer:
    """Answers a list of conversations in order. `chunk_size` conversations are sent at a
    time, which is the batch of a local model and keeps an endpoint's workers busy."""

    complete: Callable[[list[Messages]], list[Reply]]
    chunk_size: int


@dataclass(frozen=True)
class StageSettings:
    prompts: PromptSet
    max_new_tokens: int
    batch_size: int
    repair_attempts: int
    resources: str
    device: str
    # The stage's classes.parquet: imported sources keyed by class index need its order.
    classes_path: str | None = None


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    size = max(1, size)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(total: int, desc: str):
    # Scripts point sys.stderr at the rule's log, so the bar goes there.
    return tqdm(total=total, desc=desc, unit="class", file=sys.stderr, mininterval=5.0)


def describe_classes(
    classes: Sequence[ClassName],
    completer: Completer,
    prompts: PromptSet,
    repair_attempts: int,
) -> dict[str, dict[str, Any]]:
    """Records for every class: asked, checked, repaired up to K times, else a fallback.

    A request that fails outright (the client already retried it) is not repaired: there is
    no answer to correct, so the class falls back with the client's error as its reason.
    """
    records: dict[str, dict[str, Any]] = {}
    conversations = {c.raw: prompts.messages(c.display) for c in classes}
    pending = list(classes)
    with _progress(len(classes), "descriptors") as bar:
        for attempt in range(repair_attempts + 1):
            retry: list[ClassName] = []
            for chunk in _chunks(pending, completer.chunk_size):
                replies = completer.complete([conversations[c.raw] for c in chunk])
                for cls, reply in zip(chunk, replies, strict=True):
                    outcome = _settle(cls, reply, attempt, repair_attempts)
                    if isinstance(outcome, str):  # the validator's message: ask for a repair
                        conversations[cls.raw] = prompts.repair_messages(
                            cls.display, reply.text or "", outcome
                        )
                        retry.append(cls)
                    else:
                        records[cls.raw] = outcome
                        bar.update(1)
            pending = retry
            if not pending:
                break
    return records


def _settle(cls: ClassName, reply: Reply, attempt: int, repair_attempts: int):
    """A record for the class, or the error text when the answer should be repaired."""
    if reply.error is not None:
        reason = f"request failed: {reply.error}"
        logger.warning("class '%s' falls back to its name: %s", cls.raw, reason)
        return fallback_record(reason)
    record, error = parse_answer(reply.text)
    if record is not None:
        if not leaf_names_class(record["hierarchy"], cls.display):
            logger.info("class '%s': hierarchy ends in '%s', not the class name",
                        cls.raw, record["hierarchy"][-1])
        return record
    if attempt < repair_attempts:
        logger.info("class '%s': invalid answer (%s); repair %d/%d",
                    cls.raw, error, attempt + 1, repair_attempts)
        return error
    reason = f"no valid answer after {repair_attempts} repair attempt(s): {error}"
    logger.warning("class '%s' falls back to its name: %s", cls.raw, reason)
    return fallback_record(reason)


# --- Backends -----------------------------------------------------------------------------


def _resolve_device(device: str) -> str:
    return preferred_device() if device == "auto" else device


def transformers_completer(entry: Mapping[str, Any], settings: StageSettings) -> Completer:
    """A local causal LM from {resources}/models/{name}/, prompted through its chat template."""
    # lazy: torch loads only where a model runs
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_dir(settings.resources, entry["name"])
    trust = bool(entry.get("trust_remote_code", False))  # only ever when the registry says so
    device = _resolve_device(settings.device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    if not tokenizer.chat_template:
        raise ValueError(f"llm '{entry['name']}': the tokenizer in {path} has no chat template")
    tokenizer.padding_side = "left"  # decoder-only batches must end where generation starts
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust)
    model = model.to(device).eval()
    temperature = float(entry.get("temperature", 0.0))
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {
        "do_sample": False}
    torch.manual_seed(int(entry.get("seed", 0)))

    def complete(conversations: list[Messages]) -> list[Reply]:
        # zsar.models.chat loads httpx, which only the server backends' env (torch.yaml) installs
        from zsar.models.chat import ChatResult

        texts = [
            tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
            for m in conversations
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(device)
        with torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        answers = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [ChatResult(text=a, error=None) for a in answers]

    return Completer(complete=complete, chunk_size=settings.batch_size)


def openai_completer(entry: Mapping[str, Any], settings: StageSettings) -> Completer:
    """An OpenAI-compatible endpoint through the client shared with captioning."""
    # zsar.models.chat loads httpx, which only the server backends' env (torch.yaml) installs
    from zsar.models.chat import ChatClient, ChatEndpoint

    endpoint = ChatEndpoint.from_entry(entry)
    client = ChatClient(endpoint)  # reads the key from api_key_env; never logs it
    temperature = float(entry.get("temperature", 0.0))

    def complete(conversations: list[Messages]) -> list[Reply]:
        return client.complete_many(
            conversations, max_tokens=settings.max_new_tokens, temperature=temperature,
            log=logger,
        )

    # A few rounds of requests per chunk keep every worker busy between progress updates.
    return Completer(complete=complete, chunk_size=max(1, int(endpoint.concurrency)) * 4)


def _generation_params(entry: Mapping[str, Any], settings: StageSettings) -> dict[str, Any]:
    return {
        "max_new_tokens": settings.max_new_tokens,
        "temperature": float(entry.get("temperature", 0.0)),
        "repair_attempts": settings.repair_attempts,
    }


def llm_backend(make_completer: Callable[[Mapping[str, Any], StageSettings], Completer]):
    """A backend that asks an LLM: build the completer, then the shared loop."""

    def describe(entry, classes, settings):
        completer = make_completer(entry, settings)
        records = describe_classes(classes, completer, settings.prompts, settings.repair_attempts)
        return records, settings.prompts.version, _generation_params(entry, settings)

    return describe


def check_curated_entry(entry: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A curated entry: an answer (checked like an LLM's), or a whole record as a descriptors
    document holds it (an imported one, or a fallback), checked and kept as it is."""
    if isinstance(entry, dict) and "fallback" in entry:
        errors = schema_errors(entry, "class_record")
        if errors:
            return None, truncate("; ".join(errors[:5]), MAX_ERROR_TEXT)
        return dict(entry), None
    return check_answer(entry)


def describe_from_file(entry: Mapping[str, Any], classes: Sequence[ClassName], settings):
    """Curated descriptors; a class that is missing or invalid falls back, naming the file.

    An entry with `sources:` (KIND=PATH files made elsewhere) imports them here instead.
    """
    if entry.get("sources"):
        return describe_from_sources(entry, classes, settings)
    path = Path(entry["path"])
    version, curated = load_curated(path)
    records, used = {}, set()
    for cls in classes:
        key = cls.raw if cls.raw in curated else cls.display if cls.display in curated else None
        if key is None:
            reason = f"class '{cls.raw}' is not in the curated file {path}"
            logger.warning("%s; it falls back to its name", reason)
            records[cls.raw] = fallback_record(reason)
            continue
        used.add(key)
        record, error = check_curated_entry(curated[key])
        if record is None:
            reason = f"the entry for class '{cls.raw}' in {path} is invalid: {error}"
            logger.warning("%s; it falls back to its name", reason)
            record = fallback_record(reason)
        records[cls.raw] = record
    unknown = sorted(set(curated) - used)
    if unknown:
        logger.warning("%d name(s) in %s match no class of this dataset: %s",
                       len(unknown), path, ", ".join(unknown))
    return records, f"curated:{version or path.name}", {}


# backend name -> describe(entry, classes, settings) -> (records, prompt_version, generation)
def _curated_files(entry: Mapping[str, Any]) -> list[str]:
    """The curated file, or every imported source file (zsar.data.descriptor_sources)."""
    if not entry.get("sources"):
        return [entry["path"]]
    return [Source.from_entry(item).path for item in entry["sources"]]


# backend -> describe(entry, classes, settings) -> (records, prompt_version, generation), with
# its traits: only a local LLM is fetched and runs on a GPU; a curated file is a rule input.
BACKENDS: dict[str, Backend] = {
    "transformers": Backend(llm_backend(transformers_completer), fetches_weights=True,
                            uses_gpu=True),
    "openai": Backend(llm_backend(openai_completer), fetches_weights=False, uses_gpu=False),
    "file": Backend(describe_from_file, fetches_weights=False, uses_gpu=False,
                    input_files=_curated_files),
}


# --- The document and the stage -------------------------------------------------------------


def run_descriptor_stage(
    classes_path: str | Path,
    out_path: str | Path,
    entry: Mapping[str, Any],
    prompt_set_path: str | Path,
    max_new_tokens: int,
    batch_size: int,
    repair_attempts: int,
    resources: str | Path,
    device: str = "auto",
) -> None:
    """Write the descriptors JSON of every class in classes.parquet with the LLM `entry`."""
    backend_name = entry.get("backend")
    if backend_name not in BACKENDS:
        raise ValueError(f"llm '{entry.get('name')}': unknown backend '{backend_name}'; "
                         f"known: {', '.join(sorted(BACKENDS))}")
    classes = read_class_names(classes_path)
    settings = StageSettings(
        prompts=PromptSet.from_yaml(prompt_set_path),
        max_new_tokens=int(max_new_tokens),
        batch_size=int(batch_size),
        repair_attempts=int(repair_attempts),
        resources=str(resources),
        device=device,
        classes_path=str(classes_path),
    )
    logger.info("descriptors for %d classes with llm '%s' (backend %s)",
                len(classes), entry["name"], backend_name)
    records, prompt_version, generation = BACKENDS[backend_name].make(entry, classes, settings)
    block = provenance(
        {"llm": dict(entry), "classes": [c.raw for c in classes],
         "prompt_version": prompt_version, "generation": generation},
        model=entry["name"],
        prompt_version=prompt_version,
        seed=int(entry.get("seed", 0)),
        extra={"backend": backend_name, "generation": generation,
               **({"revision": entry["revision"]} if entry.get("revision") else {})},
    )
    document = descriptors_document(entry["name"], prompt_version, records, block)
    validate_descriptors(document)
    write_json(document, out_path)
    summary = document["summary"]
    logger.info("wrote %s: %d classes, %d fell back to their name",
                out_path, summary["classes"], summary["fallbacks"])
