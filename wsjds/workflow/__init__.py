"""Workflow helpers called from the Snakefile: dataset lookup, fail-fast checks, run settings.

They live in the package (not in rules/*.smk) so they are importable and unit-tested, and the rule
files stay thin. Submodules: ``flags`` (config -> CLI flags), ``proposals`` and ``report`` (the
helpers of those rule files) and ``targets`` (what ``snakemake`` builds by default); they import
this module, never the reverse, except ``flags`` and ``proposals``, which import nothing of it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from wsjds.data.sources import missing_dataset_message, required_path
from wsjds.errors import ConfigError, MissingDatasetError
from wsjds.workflow import paths
from wsjds.workflow.flags import cli_flags


# Dataset kinds the whole chain runs on (proposals, training, detection); coco is evaluation-only.
TRAINABLE_KINDS: tuple[str, ...] = ("synthetic", "voc", "tags")

DEFAULT_METHOD = "wsjds"   # the full method is the headline's default (design: Table 1 axis)
SEED_SUFFIX = "-seed"      # wsjds-seed12: method wsjds trained with seed 12 (the ablation's runs)
_SEED = r"(?:0|[1-9][0-9]*)"   # no leading zeros: one name per seed
_METHOD_NAME = re.compile(rf"(?P<method>[a-z][a-z0-9]*)(?:{SEED_SUFFIX}(?P<seed>{_SEED}))?")


# Problems listed in one config error; a longer list is cut with its count.
MAX_CONFIG_PROBLEMS = 10
MAX_PROBLEM_CHARS = 300


def validate_config(config: Mapping, schema_path: str | Path) -> None:
    """Check ``config`` against the JSON schema; raise :class:`ConfigError` with one short line per
    problem: where, what, and for an unknown key the allowed ones. The schema is never printed."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    problems = [_config_problem(error) for error in errors[:MAX_CONFIG_PROBLEMS]]
    if len(errors) > MAX_CONFIG_PROBLEMS:
        problems.append(f"... and {len(errors) - MAX_CONFIG_PROBLEMS} more")
    raise ConfigError(f"the config does not match {Path(schema_path).name}:\n  " + "\n  ".join(problems))


def _config_problem(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(key for key in error.instance if key not in allowed)
        return (f"unknown key {', '.join(map(repr, unknown))} {f'in {where}' if where else 'at the top level'}; "
                f"allowed keys: {', '.join(allowed)}")
    message = error.message if len(error.message) <= MAX_PROBLEM_CHARS else error.message[:MAX_PROBLEM_CHARS] + " ..."
    return f"{where or 'top level'}: {message}"


def datasets_of_kind(config: Mapping, *kinds: str) -> list[str]:
    """Names of the configured datasets whose ``kind`` is one of ``kinds``."""
    return [name for name, d in config["datasets"].items() if d["kind"] in kinds]


# Kinds whose root the workflow writes under results/{ds}/dataset (rules synth_dataset, tags_dataset).
GENERATED_ROOT_KINDS: tuple[str, ...] = ("synthetic", "tags")


def dataset_root(config: Mapping, ds: str) -> str:
    """Root directory of a dataset: written under results/ for synthetic and tags datasets (the
    generator's output, the checked copy of the tags), from config otherwise."""
    cfg = config["datasets"][ds]
    return paths.dataset_dir(ds) if cfg["kind"] in GENERATED_ROOT_KINDS else cfg["root"]


def dataset_input(config: Mapping, ds: str, split: str | None = None) -> str:
    """The file that stands for a dataset split in a rule's input.

    For a synthetic dataset that is the generator's output directory; for VOC/COCO it is a file the
    data must contain, and its absence raises :class:`MissingDatasetError` while Snakemake builds
    the DAG, before any job runs.
    """
    cfg = config["datasets"][ds]
    if cfg["kind"] == "tags":
        tags_inputs(config, ds)   # the user's files must exist before the DAG is built
    if cfg["kind"] in GENERATED_ROOT_KINDS:
        return dataset_root(config, ds)
    split = split or cfg["train_split"]
    path = required_path(cfg["kind"], cfg["root"], split)
    if not path.is_file():
        raise MissingDatasetError(missing_dataset_message(ds, cfg["kind"], cfg["root"], split, cfg.get("year")))
    return str(path)


def tags_inputs(config: Mapping, ds: str) -> dict[str, str]:
    """The user's files of a tags dataset (rule tags_dataset's input); a missing one raises
    :class:`MissingDatasetError` saying which key names it."""
    cfg = config["datasets"][ds]
    inputs = {"images": cfg["images"], "labels": cfg["labels"]}
    split_file = cfg["split"].get("split_file")
    if split_file is not None:
        inputs["split_file"] = split_file
    for key, path in {**inputs, **({"boxes": cfg["boxes"]} if cfg.get("boxes") else {})}.items():
        exists = Path(path).is_dir() if key == "images" else Path(path).exists()
        if not exists:
            name = "split.split_file" if key == "split_file" else key
            raise MissingDatasetError(f"Dataset {ds!r} (tags): datasets.{ds}.{name} = {path!r} does not exist.\n"
                                      f"A tags dataset is a folder of images and a CSV 'image,tags' (README, "
                                      f"\"Your own images\").")
    return inputs


def tags_settings(config: Mapping, ds: str) -> dict:
    """What ``wsjds data tags`` builds a tags dataset from (results/{ds}/dataset_settings.json): the
    user's files, the split names and rule, and the class list (None: the CSV's tags)."""
    cfg = config["datasets"][ds]
    inputs = tags_inputs(config, ds)
    split = cfg["split"]
    return {"tags": {"images": inputs["images"], "labels": inputs["labels"], "split_file": inputs.get("split_file"),
                     "train_split": cfg["train_split"], "test_split": cfg["test_split"],
                     "classes": list(cfg["classes"]) if cfg.get("classes") else None,
                     "test_fraction": split.get("test_fraction"),
                     "seed": split.get("seed", 0) if "test_fraction" in split else None}}


def synth_settings(config: Mapping, ds: str) -> dict:
    """What ``wsjds synth`` generates a synthetic dataset from (results/{ds}/dataset_settings.json):
    the dataset's ``generator`` section."""
    return {"generator": dict(config["datasets"][ds]["generator"])}


def dataset_settings(config: Mapping, ds: str) -> dict:
    """The settings of a generated dataset's rule: :func:`synth_settings` or :func:`tags_settings`."""
    kind = config["datasets"][ds]["kind"]
    if kind not in GENERATED_ROOT_KINDS:
        raise ValueError(f"dataset {ds!r} of kind {kind!r} is not generated by the workflow")
    return synth_settings(config, ds) if kind == "synthetic" else tags_settings(config, ds)


def dataset_classes(config: Mapping, ds: str) -> tuple[str, ...]:
    """Class list of a dataset: fixed per kind, or a tags dataset's (config, else its CSV's tags)."""
    cfg = config["datasets"][ds]
    if cfg["kind"] == "tags":
        from wsjds.data.tags import tags_classes

        tags_inputs(config, ds)
        return tags_classes(cfg["labels"], cfg.get("classes"))
    from wsjds.data.classes import classes_for

    return classes_for(cfg["kind"])


def has_boxes(config: Mapping, ds: str) -> bool:
    """Whether a dataset has box annotations to evaluate (a tags dataset only with ``boxes``)."""
    cfg = config["datasets"][ds]
    return cfg["kind"] != "tags" or cfg.get("boxes") is not None


def headline_inputs(config: Mapping, ds: str) -> dict[str, str]:
    """What results/{ds}_frcnn_map.json reads: the box metrics where the dataset has boxes, the
    image-level classification AP for tags datasets, and the pseudo-GT report."""
    cfg = config["datasets"][ds]
    test, wsod, frcnn = cfg["test_split"], DEFAULT_METHOD, paths.frcnn_run(DEFAULT_METHOD)
    inputs = {"pseudo_gt_report": paths.pseudo_gt_report(ds, wsod)}
    if has_boxes(config, ds):
        inputs.update({"frcnn_map": paths.metric(ds, frcnn, test, "map"), "wsod_map": paths.metric(ds, wsod, test, "map"),
                       "corloc": paths.metric(ds, wsod, config["evaluation"]["corloc_split"], "corloc")})
    if cfg["kind"] == "tags":
        inputs.update({"wsod_cls_map": paths.metric(ds, wsod, test, "classification"),
                       "frcnn_cls_map": paths.metric(ds, frcnn, test, "classification")})
    return inputs


def parse_method(name: str) -> tuple[str, int | None]:
    """``"wsjds"`` -> ``("wsjds", None)`` (the recipe's seed); ``"wsjds-seed12"`` -> ``("wsjds", 12)``.

    The method part of a run name (the ``{method}`` wildcard, the first component of ``{run}``).
    A name of another shape raises ValueError saying what a name looks like.
    """
    match = _METHOD_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"bad method name {name!r}: expected METHOD or METHOD{SEED_SUFFIX}N, a configured "
                         f"method optionally with a training seed N >= 0 without leading zeros "
                         f"(e.g. {DEFAULT_METHOD!r}, '{DEFAULT_METHOD}{SEED_SUFFIX}12')")
    seed = match.group("seed")
    return match.group("method"), None if seed is None else int(seed)


def method_run_name(method: str, seed: int | None = None) -> str:
    """The run name of ``method`` trained with ``seed`` (None: the recipe's seed); inverse of :func:`parse_method`."""
    return method if seed is None else f"{method}{SEED_SUFFIX}{seed}"


def method_entry(config: Mapping, name: str) -> dict:
    """The ``methods`` entry of a method name (seed suffix allowed); an unknown method raises ValueError."""
    method, _ = parse_method(name)
    if method not in config["methods"]:
        raise ValueError(f"method {method!r} (of {name!r}) is not among methods: {sorted(config['methods'])}")
    return dict(config["methods"][method])


def method_wildcard(config: Mapping) -> str:
    """Regex of the ``{method}`` wildcard: a configured method, optionally with a seed suffix."""
    methods = "|".join(re.escape(m) for m in config["methods"])
    return f"(?:{methods})(?:{re.escape(SEED_SUFFIX)}{_SEED})?"


def run_wildcard(config: Mapping) -> str:
    """Regex of the ``{run}`` wildcard: ``{method}`` or ``{method}/frcnn``."""
    return f"{method_wildcard(config)}(?:/frcnn)?"


def config_hash(config: Mapping) -> str:
    """Short hash of the whole resolved config (recorded in the headline)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_references(config: Mapping) -> None:
    """Cross-references the schema cannot express: a dataset's model / training recipe and a model's
    weights must name existing entries, the ablation's methods configured ones. Raises ValueError
    naming the dangling key."""
    for name, ds in config["datasets"].items():
        for key, section in (("model", "models"), ("training", "training"), ("inference", "inference"),
                             ("frcnn", "frcnn")):
            if ds[key] not in config[section]:
                raise ValueError(f"datasets.{name}.{key} = {ds[key]!r} is not among {section}: {sorted(config[section])}")
    for name, preset in config["frcnn"].items():
        for key, section in (("model", "models"), ("training", "training"), ("inference", "inference")):
            if preset[key] not in config[section]:
                raise ValueError(f"frcnn.{name}.{key} = {preset[key]!r} is not among {section}: {sorted(config[section])}")
    for name, ds in config["datasets"].items():
        preset = config["frcnn"][ds["frcnn"]]
        if preset["init"] == "wsod" and preset["model"] != ds["model"]:
            raise ValueError(f"frcnn.{ds['frcnn']}.model = {preset['model']!r} starts from the WSOD model (init: wsod), "
                             f"but datasets.{name}.model is {ds['model']!r}: they must be the same network")
    for name, model in config["models"].items():
        if model["weights"] not in config["weights"]:
            raise ValueError(f"models.{name}.weights = {model['weights']!r} is not among weights: "
                             f"{sorted(config['weights'])}")
    from wsjds.data.transforms import Augmentation

    for name, recipe in config["training"].items():
        if recipe["effective_batch"] % recipe["world_size"]:
            raise ValueError(f"training.{name}: effective_batch {recipe['effective_batch']} is not a multiple of "
                             f"world_size {recipe['world_size']} (each process takes the same share of an update)")
        if recipe["feature_cache"] and not Augmentation.from_config(recipe["augmentation"]).pixels_follow_view:
            raise ValueError(f"training.{name}.feature_cache needs pixels fixed by (image, flip, scale): set "
                             f"augmentation saturation and exposure to 1 and crop_fraction to 1, or the cache off")
    for name, entry in config["weights"].items():
        recipe = entry.get("pretraining")
        if recipe is None:
            continue
        if recipe not in config["pretraining"]:
            raise ValueError(f"weights.{name}.pretraining = {recipe!r} is not among pretraining: "
                             f"{sorted(config['pretraining'])}")
        if entry["path"] != pretrained_weights_path(name):
            raise ValueError(f"weights.{name}.path must be {pretrained_weights_path(name)!r} (rule pretrain_trunk "
                             f"writes it), got {entry['path']!r}")
    for name, recipe in config["pretraining"].items():
        if recipe["model"] not in config["models"]:
            raise ValueError(f"pretraining.{name}.model = {recipe['model']!r} is not among models: "
                             f"{sorted(config['models'])}")
    _check_ablation(config)


def _check_ablation(config: Mapping) -> None:
    """``ablation``: known methods, Fast R-CNN only for ablation methods, no repeated entry."""
    ablation = config["ablation"]
    for key in ("methods", "frcnn_methods", "seeds"):
        repeated = sorted({v for v in ablation[key] if list(ablation[key]).count(v) > 1})
        if repeated:
            raise ValueError(f"ablation.{key} repeats {repeated}: each entry is one set of runs")
    unknown = [m for m in ablation["methods"] if m not in config["methods"]]
    if unknown:
        raise ValueError(f"ablation.methods {unknown} are not among methods: {sorted(config['methods'])}")
    outside = [m for m in ablation["frcnn_methods"] if m not in ablation["methods"]]
    if outside:
        raise ValueError(f"ablation.frcnn_methods {outside} are not among ablation.methods: "
                         f"{list(ablation['methods'])} (Fast R-CNN retrains on an ablation run's pseudo GT)")


def pretrained_weights_path(weights: str) -> str:
    """Where rule pretrain_trunk writes the weights file of entry ``weights``."""
    return paths.pretrained_weights(weights)


def pretrain_settings(config: Mapping, weights: str) -> dict:
    """Everything pretraining the trunk of weights entry ``weights`` depends on."""
    entry = config["weights"][weights]
    if entry.get("pretraining") is None:
        raise ValueError(f"weights.{weights} names no pretraining recipe: its file is not made by the workflow")
    recipe = dict(config["pretraining"][entry["pretraining"]])
    model = dict(config["models"][recipe.pop("model")])
    return {"weights_name": weights, "weights": dict(entry), "model": model, "pretraining": recipe}


def pretrained_inputs(settings: Mapping) -> list[str]:
    """The weights file a run's model loads, when the workflow makes it (else nothing)."""
    entry = settings["weights"]
    return [entry["path"]] if entry.get("pretraining") is not None else []


def train_settings(config: Mapping, ds: str, method: str) -> dict:
    """Everything one training run depends on, resolved from the config (stored in checkpoints;
    a change reruns the rounds). ``method`` is the run name: ``wsjds-seed12`` trains method
    ``wsjds`` with ``training.<recipe>.seed`` 12 (``method_name`` keeps the full name)."""
    cfg = config["datasets"][ds]
    model = config["models"][cfg["model"]]
    return {
        "dataset": {"name": ds, "kind": cfg["kind"], "root": dataset_root(config, ds), "split": cfg["train_split"],
                    "include_difficult_labels": cfg.get("include_difficult_labels", False)},
        "classes": list(dataset_classes(config, ds)),
        "method_name": method,
        "method": method_entry(config, method),
        "model": dict(model),
        "weights": dict(config["weights"][model["weights"]]),
        "cgl": dict(config["cgl"]),
        "training": _seeded_recipe(config, cfg["training"], method),
        "distributed": dict(config["distributed"]),
    }


def frcnn_settings(config: Mapping, ds: str, method: str) -> dict:
    """Everything a Fast R-CNN retraining run depends on (results/{ds}/{method}/frcnn/settings.json);
    a seed suffix of ``method`` is the Fast R-CNN's training seed too."""
    method_entry(config, method)   # an unknown method fails here, not in the WSOD run it reads

    cfg = config["datasets"][ds]
    preset = config["frcnn"][cfg["frcnn"]]
    model = config["models"][preset["model"]]
    head = {k: v for k, v in preset.items() if k not in ("model", "training", "inference")}
    return {
        "dataset": {"name": ds, "kind": cfg["kind"], "root": dataset_root(config, ds), "split": cfg["train_split"],
                    "include_difficult_labels": cfg.get("include_difficult_labels", False)},
        "classes": list(dataset_classes(config, ds)),
        "method_name": method,
        "model": dict(model),
        "weights": dict(config["weights"][model["weights"]]),
        "frcnn": head,
        "training": _seeded_recipe(config, preset["training"], method),
        "distributed": dict(config["distributed"]),
    }


def _seeded_recipe(config: Mapping, recipe: str, method: str) -> dict:
    """Training recipe ``recipe``, its ``seed`` replaced by the seed suffix of ``method`` if it has one."""
    training = dict(config["training"][recipe])
    _, seed = parse_method(method)
    if seed is not None:
        training["seed"] = seed
    return training


def proposal_job_settings(config: Mapping, ds: str, split: str) -> dict:
    """What a proposal job of ``split`` reads (results/{ds}/proposals/{split}_settings.json): the
    dataset, the post-processing policy with the split's cap, and the Selective Search settings or
    the imported format (``proposals``, with ``datasets.<ds>.proposals`` applied)."""
    from wsjds.workflow.proposals import SELECTIVE_SEARCH, policy, proposal_settings

    proposals = proposal_settings(config, ds)
    settings = {"dataset": _dataset_and_classes(config, ds)["dataset"], "split": split,
                "policy": policy(config, ds, split)}
    if proposals["source"] == SELECTIVE_SEARCH:
        settings["selective_search"] = dict(proposals["selective_search"])
    else:
        settings["import_format"] = proposals["source"]["format"]
    return settings


def predict_settings(config: Mapping, ds: str, run: str) -> dict:
    """What ``wsjds predict --run results/{ds}/{run}`` needs beside the run's settings: its test-time
    settings (inference preset, the test split's proposal settings) and, where the method has a
    segmentation branch, the mask settings and the WSOD run that makes the masks. Paths are
    relative to the run directory, so a copied run directory still predicts."""
    from wsjds.artifacts.mask_store import MODEL_VARIANTS
    from wsjds.stages.masks import MaskConfig
    from wsjds.workflow.proposals import policy, proposal_settings

    cfg = config["datasets"][ds]
    method, _, stage = run.partition("/")
    inference = inference_settings(config, ds, run)
    proposals = proposal_settings(config, ds)
    if proposals["source"] != "selective_search":
        raise ValueError(f"dataset {ds!r} imports its proposals; wsjds predict computes Selective Search on new "
                         f"images and needs proposals.selective_search settings")
    result = {
        "dataset": ds, "run": run, "classes": list(dataset_classes(config, ds)),
        "checkpoint": Path(final_checkpoint(config, ds, run)).name,
        "inference": inference,
        "selective_search": dict(proposals["selective_search"]),
        "proposal_policy": policy(config, ds, cfg["test_split"]),
        "drawing": {key: config["report"]["gallery"][key] for key in ("min_score", "max_boxes")},
        "masks": None,
    }
    masks = MaskConfig.from_config(config["masks"], ds)
    variants = [v for v in MODEL_VARIANTS if v in masks.variants]
    if method_entry(config, method)["segmentation"] and variants:
        up = "../" if stage == "frcnn" else ""
        result["masks"] = {"variant": variants[0], "settings": f"{up}settings.json",
                           "checkpoint": f"{up}{Path(final_checkpoint(config, ds, method)).name}",
                           "params": masks.params.to_json()}
    return result


def _recipes(config: Mapping, ds: str, run: str) -> tuple[str, str]:
    """Names of the (training, inference) presets a run uses."""
    cfg = config["datasets"][ds]
    if run.endswith("/frcnn"):
        preset = config["frcnn"][cfg["frcnn"]]
        return preset["training"], preset["inference"]
    return cfg["training"], cfg["inference"]


def world_size(config: Mapping, ds: str, run: str = DEFAULT_METHOD) -> int:
    """Processes of each training job of the run (``training.<recipe>.world_size``)."""
    return config["training"][_recipes(config, ds, run)[0]]["world_size"]


def round_count(config: Mapping, ds: str, run: str = DEFAULT_METHOD) -> int:
    return config["training"][_recipes(config, ds, run)[0]]["rounds"]


def detect_settings(config: Mapping, ds: str, run: str = DEFAULT_METHOD) -> dict:
    """What detecting with a run's model depends on beside the checkpoint, which holds the model's
    settings (results/{ds}/{run}/detect_settings.json): the dataset, its classes and the inference preset."""
    return {**_dataset_and_classes(config, ds), "inference": inference_settings(config, ds, run)}


def mask_settings(config: Mapping, ds: str) -> dict:
    """What the crf / nocrf masks depend on beside the checkpoint (results/{ds}/{method}/mask_settings.json):
    the dataset, its classes and the mask parameters (``masks``, with ``masks.datasets.<ds>`` applied)."""
    from wsjds.stages.masks import MaskConfig

    return {**_dataset_and_classes(config, ds), "masks": MaskConfig.from_config(config["masks"], ds).params.to_json()}


def pseudo_gt_settings(config: Mapping, ds: str) -> dict:
    """What mining pseudo ground truth depends on beside the WSOD scores
    (results/{ds}/{method}/pseudo_gt_settings.json): the dataset, its classes, the training split,
    the ``pseudo_gt`` policy and the ``evaluation`` matching of its sanity report."""
    return {**_dataset_and_classes(config, ds), "split": config["datasets"][ds]["train_split"],
            "pseudo_gt": dict(config["pseudo_gt"]),
            "matching": {key: config["evaluation"][key] for key in ("iou_threshold", "corloc_definition")}}


def evaluation_settings(config: Mapping, ds: str) -> dict:
    """What scoring a run's detections depends on (results/{ds}/evaluation_settings.json): the
    dataset (with a tags dataset's box annotations), its classes, the AP kind of the dataset and the
    ``evaluation`` numbers."""
    cfg, evaluation = config["datasets"][ds], config["evaluation"]
    settings = _dataset_and_classes(config, ds)
    settings["dataset"]["boxes"] = str(cfg["boxes"]) if cfg["kind"] == "tags" and cfg.get("boxes") else None
    settings["evaluation"] = {"use07": use_07_metric(config, ds), "iou_threshold": evaluation["iou_threshold"],
                              "corloc_definition": evaluation["corloc_definition"],
                              "failure_modes": dict(evaluation["failure_modes"])}
    return settings


def _dataset_and_classes(config: Mapping, ds: str) -> dict:
    cfg = config["datasets"][ds]
    return {"dataset": {"name": ds, "kind": cfg["kind"], "root": dataset_root(config, ds),
                        "include_difficult_labels": cfg.get("include_difficult_labels", False)},
            "classes": list(dataset_classes(config, ds))}


def inference_settings(config: Mapping, ds: str, run: str = DEFAULT_METHOD) -> dict:
    """The run's inference preset (the shard count stays with the rules)."""
    preset = dict(config["inference"][_recipes(config, ds, run)[1]])
    preset.pop("shards")
    return preset


def inference_shards(config: Mapping, ds: str, run: str = DEFAULT_METHOD) -> int:
    return config["inference"][_recipes(config, ds, run)[1]]["shards"]


def final_checkpoint(config: Mapping, ds: str, run: str) -> str:
    return paths.checkpoint(ds, run, round_count(config, ds, run))


def use_07_metric(config: Mapping, ds: str) -> bool:
    """11-point AP for VOC2007 (and earlier); the area under the curve for 2010+ and other datasets."""
    cfg = config["datasets"][ds]
    return cfg["kind"] == "voc" and cfg["year"] < 2010
