# Thin adapters from wildcards to the workflow helpers in wsjds.workflow (where the logic and its
# tests live).

from wsjds import workflow as wf
from wsjds.workflow import paths
from wsjds.io import write_json


def dataset_input(wildcards):
    """Input standing for a dataset split; fails at DAG-build time when the data is missing."""
    return wf.dataset_input(config, wildcards.ds, wildcards.get("split"))


def dataset_root(wildcards):
    return wf.dataset_root(config, wildcards.ds)


def dataset_kind(wildcards):
    return config["datasets"][wildcards.ds]["kind"]


def rule_resources(group):
    return config["resources"][group]


def train_job_resource(name, run):
    """A training job's ``threads`` or ``gpu``: the per-process amount of resources.train times
    the world_size of run ``run`` (a pattern of the rule's wildcards; its processes share them)."""
    return lambda wildcards: rule_resources("train")[name] * wf.world_size(
        config, wildcards.ds, run.format(**dict(wildcards.items())))


def train_proposals(wildcards):
    split = config["datasets"][wildcards.ds]["train_split"]
    return paths.proposals(wildcards.ds, split)


def previous_round(wildcards, run):
    """Round k-1's checkpoint of ``run`` (none for round 1); rounds past the configured count are an error."""
    k, last = int(wildcards.round), wf.round_count(config, wildcards.ds, run)
    if not 1 <= k <= last:
        raise ValueError(f"round {k} of {wildcards.ds}/{run}: its training recipe has {last} rounds")
    return [] if k == 1 else paths.checkpoint(wildcards.ds, run, k - 1)


def all_round_scalars(wildcards):
    rounds = range(1, wf.round_count(config, wildcards.ds, wildcards.run) + 1)
    return [paths.round_scalars(wildcards.ds, wildcards.run, k) for k in rounds]


def final_checkpoint(wildcards):
    return wf.final_checkpoint(config, wildcards.ds, wildcards.run)


def detection_shards(wildcards):
    n = wf.inference_shards(config, wildcards.ds, wildcards.run)
    return [paths.detection_shard(wildcards.ds, wildcards.run, wildcards.split, i, n) for i in range(n)]


def pseudo_gt_scores(wildcards):
    split = config["datasets"][wildcards.ds]["train_split"]
    return paths.detections(wildcards.ds, wildcards.method, split)


# --- Masks (rules/masks.smk) -----------------------------------------------------------------


def mask_input_detections(wildcards):
    """The detections the masks are made for: the final detector's, i.e. the Fast R-CNN retrained
    on the method's pseudo GT (the paper's COCO table evaluates masks on those boxes)."""
    return paths.detections(wildcards.ds, paths.frcnn_run(wildcards.method), wildcards.split)


def mask_config(wildcards):
    from wsjds.stages.masks import MaskConfig

    return MaskConfig.from_config(config["masks"], wildcards.ds)


def mask_model_inputs(wildcards):
    """The mask settings and the run's final checkpoint, for the crf / nocrf masks (segmentation branch only)."""
    if not wf.method_entry(config, wildcards.method)["segmentation"]:
        method, _ = wf.parse_method(wildcards.method)
        raise ValueError(
            f"method {wildcards.method!r} has no segmentation branch (methods.{method}.segmentation "
            f"is false), so it has no crf / nocrf masks; ask for the box baselines instead, e.g. "
            f"{paths.masks(wildcards.ds, wildcards.method, wildcards.split, 'bb')}"
        )
    return {
        "settings": paths.mask_settings(wildcards.ds, wildcards.method),
        "checkpoint": wf.final_checkpoint(config, wildcards.ds, wildcards.method),
    }


def mask_shards(wildcards):
    n = mask_config(wildcards).shards
    return [paths.mask_shard(wildcards.ds, wildcards.method, wildcards.split, wildcards.variant, i, n)
            for i in range(n)]


def coco_annotations(ds, split):
    """The COCO instances JSON of a split (synthetic and coco datasets), or None (VOC has none)."""
    kind = config["datasets"][ds]["kind"]
    if kind == "synthetic":
        return f"{wf.dataset_root(config, ds)}/annotations/instances_{split}.json"
    if kind == "coco":
        return f"{config['datasets'][ds]['root']}/annotations/instances_{split}.json"
    return None


def mask_export_flags(wildcards):
    """Standard COCO ids where the dataset has an instances JSON; the package's ids otherwise."""
    path = coco_annotations(wildcards.ds, wildcards.split)
    return "" if path is None else f"--annotations {path}"


def instance_seg_variants(wildcards):
    """(variants to score, variants the method cannot make) for results/{ds}/{method}/metrics/instance_seg.json."""
    from wsjds.artifacts.mask_store import MODEL_VARIANTS

    wanted = mask_config(wildcards).variants
    if wf.method_entry(config, wildcards.method)["segmentation"]:
        return list(wanted), []
    return [v for v in wanted if v not in MODEL_VARIANTS], [v for v in wanted if v in MODEL_VARIANTS]


def instance_seg_inputs(wildcards):
    split = config["datasets"][wildcards.ds]["test_split"]
    scored, _ = instance_seg_variants(wildcards)
    if not scored:
        raise ValueError(f"masks.variants leaves nothing to score for method {wildcards.method!r}")
    inputs = {"dataset": wf.dataset_input(config, wildcards.ds, split)}
    inputs.update({v: paths.mask_coco_results(wildcards.ds, wildcards.method, split, v) for v in scored})
    return inputs


def instance_seg_flags(wildcards, input):
    split = config["datasets"][wildcards.ds]["test_split"]
    scored, unavailable = instance_seg_variants(wildcards)
    flags = [f"--annotations {coco_annotations(wildcards.ds, split)}"]
    flags += [f"--variant {v}={getattr(input, v)}" for v in scored]
    if unavailable:
        flags.append("--unavailable " + " ".join(unavailable))
    return " ".join(flags)
