"""The recipe space the search samples, as Optuna parameters.

Every parameter is categorical (so the default recipe's own values can be among the
choices and the default recipe enqueued as the first trial)::

    structure      none | unstructured | channel          (magnitude or channel pruning)
    sparsity       0.5 .. 0.97 and the default's         (unstructured; the per-layer cap,
                                                          max_layer_sparsity, is raised to
                                                          sparsity + 0.02 where it is lower)
    scope          per_layer | global                    (unstructured)
    floor          0.3 | 0.5 | 0.7 and the default's     (stem and classifier at most this sparse)
    channels       0.1 .. 0.8 and the default's          (channel: fraction of channels removed)
    then           0 (off) | 0.5 | 0.7 | 0.8 | 0.9        (channel: prune.then_sparsity, unstructured
                                                          pruning of the kernels the channels leave)
    finetune       1 | 3 | 6 | 12 | 24                   (x the base recipe's fine-tuning epochs,
                                                          and x its clustering epochs)
    clusters       0 (off) | 8 | 16 | 32                 (weight clustering, sparsity kept)
    qat            false | true                          (QAT, preserving sparsity/clusters)
    distill        false | true                          (finetune.distill: fine-tune against the
                                                          source model's outputs too; when anything
                                                          is fine-tuned, the data is one in-memory
                                                          classification output and the base has
                                                          none)
    deploy         the artifacts the base recipe makes, float32 left out
    int8_io        false | true                          (int8 TFLite only, when the base is false)
    per_tensor     false | true                          (int8 TFLite only: one weight scale per
                                                          tensor instead of per channel)
    strip          false | true                          (TFLite only, when the base is false:
                                                          recipe.tflite_strip, names and converter
                                                          metadata removed)

A trial's recipe makes only its deployed artifact (``quantize`` and ``formats`` narrowed
to it), so it costs one conversion; the seed and everything else come from the base
recipe (the target's default, the reference model's, ``--recipe``,
``--epochs``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..recipe import ClusterSpec, DistillSpec, PruneSpec, QatSpec, Recipe
from .space import Candidate, derive

SPARSITY = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)
FLOORS = (0.3, 0.5, 0.7)
CHANNELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
THEN = (0.0, 0.5, 0.7, 0.8, 0.9)   # after channel pruning; 0: none. On the DS-CNN, channels -50%
                                 # then 80% with 8 clusters took the file from 7,092 to 5,725 B gzip
CLUSTERS = (0, 8, 16, 32)
FINETUNE = (1, 3, 6, 12, 24)   # x the base's fine-tuning epochs: high sparsity recovers with longer training


@dataclass(frozen=True)
class Space:
    deploys: tuple[str, ...]
    sparsity: tuple[float, ...]
    floors: tuple[float, ...]
    channels: tuple[float, ...]
    int8_io: bool                    # search int8 I/O (the base recipe has it off)
    strip: bool = False              # search tflite_strip (the base recipe has it off)
    distill: bool = False            # search finetune.distill (compress/distill.py: the data allows it)
    then: tuple[float, ...] = THEN   # prune.then_sparsity after channel pruning (0: none)


def space_for(base: Recipe, deploys: tuple[str, ...] | None = None, distill: bool = False) -> Space:
    names = deploys or tuple(n for n in base.artifact_names() if not n.startswith("float32."))
    names = names or (base.deploy,)
    if base.deploy in names:         # the default's deploy first: the first trial is the default
        names = (base.deploy,) + tuple(n for n in names if n != base.deploy)
    prune = base.prune
    sparsity, floors, channels = set(SPARSITY), set(FLOORS), set(CHANNELS)
    if prune is not None and prune.structure == "unstructured":
        sparsity.add(prune.final_sparsity)
    then = set(THEN)
    if prune is not None and prune.structure == "channel":
        channels.add(prune.final_sparsity)
        then.add(prune.then_sparsity or 0.0)
    if prune is not None and prune.stem_and_classifier_max_sparsity is not None:
        floors.add(prune.stem_and_classifier_max_sparsity)
    return Space(tuple(names), tuple(sorted(sparsity)), tuple(sorted(floors)), tuple(sorted(channels)),
                 int8_io=not base.int8_io, strip=not base.tflite_strip,
                 distill=distill and base.finetune.distill is None, then=tuple(sorted(then)))


def suggest(trial, base: Recipe, space: Space) -> Candidate:
    """The candidate recipe of an Optuna trial (``trial.suggest_categorical`` calls only)."""
    structure = trial.suggest_categorical("structure", ["none", "unstructured", "channel"])
    params: dict = {"structure": structure}
    if structure == "unstructured":
        params["sparsity"] = trial.suggest_categorical("sparsity", list(space.sparsity))
        params["scope"] = trial.suggest_categorical("scope", ["per_layer", "global"])
        params["floor"] = trial.suggest_categorical("floor", list(space.floors))
    elif structure == "channel":
        params["channels"] = trial.suggest_categorical("channels", list(space.channels))
        params["then"] = trial.suggest_categorical("then", list(space.then))
    if structure != "none":
        params["finetune"] = trial.suggest_categorical("finetune", list(FINETUNE))
    params["clusters"] = trial.suggest_categorical("clusters", list(CLUSTERS))
    params["qat"] = trial.suggest_categorical("qat", [False, True])
    if space.distill and fine_tunes(params):
        params["distill"] = trial.suggest_categorical("distill", [False, True])
    params["deploy"] = trial.suggest_categorical("deploy", list(space.deploys))
    if space.int8_io and params["deploy"] == "int8.tflite":
        params["int8_io"] = trial.suggest_categorical("int8_io", [False, True])
    if params["deploy"] == "int8.tflite":
        params["per_tensor"] = trial.suggest_categorical("per_tensor", [False, True])
    if space.strip and params["deploy"].endswith(".tflite"):
        params["strip"] = trial.suggest_categorical("strip", [False, True])
    return candidate(base, params)


def candidate(base: Recipe, params: dict) -> Candidate:
    """The recipe ``params`` (a trial's parameters) make from ``base``."""
    epochs = base.finetune.epochs
    finetune = base.finetune.model_copy(update={
        "epochs": epochs * params.get("finetune", 1),
        "distill": DistillSpec() if params.get("distill") else base.finetune.distill})
    prune_base = base.prune.model_dump(mode="python") if base.prune is not None else {}
    prune = None
    if params["structure"] == "unstructured":
        prune_base.pop("block_size", None)
        prune_base.pop("then_sparsity", None)    # a channel base's: unstructured has none
        cap = max(prune_base.get("max_layer_sparsity", 0.9), round(min(0.99, params["sparsity"] + 0.02), 2))
        prune = PruneSpec(**{**prune_base, "structure": "unstructured",
                             "final_sparsity": params["sparsity"], "scope": params["scope"],
                             "max_layer_sparsity": cap,
                             "initial_sparsity": min(prune_base.get("initial_sparsity", 0.0),
                                                     params["sparsity"]),
                             "stem_and_classifier_max_sparsity": params["floor"]})
    elif params["structure"] == "channel":
        then = params.get("then") or None
        prune = PruneSpec(structure="channel", final_sparsity=params["channels"],
                          importance=prune_base.get("importance", "l1"), then_sparsity=then,
                          max_layer_sparsity=max(0.9, round(min(0.99, (then or 0.0) + 0.02), 2)))
    sparse = params["structure"] == "unstructured" or bool(params.get("then"))
    cluster = None
    if params["clusters"]:
        # Clustering's fine-tuning grows with the pruning's: on the DS-CNN (95% per-layer, x24,
        # 8 clusters, distilled) 2 clustering epochs lost 1.26 points and 12 lost 0.25.
        cluster_epochs = base.cluster.epochs if base.cluster else max(1, epochs // 2)
        cluster = ClusterSpec(number_of_clusters=params["clusters"],
                              preserve_sparsity=sparse,
                              epochs=cluster_epochs * params.get("finetune", 1))
    qat = None
    if params["qat"]:
        preserve = {(True, True): "sparsity_and_clusters", (True, False): "sparsity",
                    (False, True): "clusters", (False, False): "none"}[
            (sparse, cluster is not None)]
        qat = QatSpec(preserve=preserve, epochs=base.qat.epochs if base.qat else max(1, epochs // 2))
    precision, fmt = params["deploy"].split(".")
    cand = derive(base, _label(params), prune=prune, cluster=cluster, qat=qat, quantize=(precision,),
                  formats=(fmt,), deploy=params["deploy"], finetune=finetune,
                  int8_io=params.get("int8_io", base.int8_io),
                  int8_per_channel=not params.get("per_tensor", not base.int8_per_channel),
                  tflite_strip=params.get("strip", base.tflite_strip))
    return cand


def neighbours(params: dict, space: Space) -> list[dict]:
    """The trials one step more compressed than ``params`` (a trial that meets every
    budget and is the smallest so far), the steps that cost no accuracy first: a stripped
    TFLite file, int8 I/O, one weight scale per tensor, sparsity or channels one step up,
    clusters one step down
    (off counts as above 32). A sampler spends most of a short budget away from its best
    trial: on the reference model, 8 of 20 TPE trials did not prune at all, while the
    recipe one step from the best (97% instead of 95%) was 19.6x smaller than the float
    file against the best's 16.7x. A step that loses too much accuracy is tried again
    with longer fine-tuning (:func:`longer`)."""
    steps: list[dict] = []
    if space.strip and params["deploy"].endswith(".tflite") and not params.get("strip", True):
        steps.append({"strip": True})
    if space.int8_io and params["deploy"] == "int8.tflite" and not params.get("int8_io", True):
        steps.append({"int8_io": True})
    if params["deploy"] == "int8.tflite" and not params.get("per_tensor", True):
        steps.append({"per_tensor": True})
    if params["structure"] == "unstructured":
        up = [s for s in space.sparsity if s > params["sparsity"]]
        if up:
            steps.append({"sparsity": up[0]})
    elif params["structure"] == "channel":
        up = [c for c in space.channels if c > params["channels"]]
        if up:
            steps.append({"channels": up[0]})
        then = [t for t in space.then if t > (params.get("then") or 0.0)]
        if then:
            steps.append({"then": then[0]})
    clusters = sorted((c for c in CLUSTERS if c), reverse=True)
    if params["clusters"] == 0:
        steps.append({"clusters": clusters[0]})
    elif params["clusters"] != clusters[-1]:
        steps.append({"clusters": clusters[clusters.index(params["clusters"]) + 1]})
    return [{**params, **step} for step in steps]


def longer(params: dict) -> dict | None:
    """``params`` with the next longer fine-tuning (the accuracy back-off's first rung,
    space.backoff_ladder), or None when it is the longest or nothing is fine-tuned."""
    finetune = params.get("finetune")
    more = [f for f in FINETUNE if finetune is not None and f > finetune]
    return {**params, "finetune": more[0]} if more else None


def distilled(params: dict) -> dict | None:
    """``params`` fine-tuned against the source model's outputs too, or None where the
    space does not offer distillation or ``params`` have it already: the lever after
    longer fine-tuning (the back-off ladder's next rung). Not the first: on the DS-CNN
    it took 90% pruning from 2.0 points lost to 0.0 (48 epochs), but on the digits CNN
    it cost 0.6 to 1.9 points (90% per-layer, 16 or 8 clusters: 1.11 -> 1.67 and 1.39 ->
    1.94 lost; 95% global at x6: 0.28 -> 2.22)."""
    return {**params, "distill": True} if params.get("distill") is False else None


def default_params(base: Recipe, space: Space) -> dict | None:
    """The parameters whose candidate is ``base`` (narrowed to its deployed artifact), or
    None when the base recipe is outside the space (block or 2:4 pruning, a regularizer,
    clusters not in the choices)."""
    prune = base.prune
    if base.regularize is not None or base.deploy not in space.deploys:
        return None
    clusters = base.cluster.number_of_clusters if base.cluster else 0
    if clusters not in CLUSTERS:
        return None
    params: dict = {"structure": "none" if prune is None else prune.structure}
    if prune is not None and prune.structure == "unstructured":
        if prune.stem_and_classifier_max_sparsity is None:
            return None
        params.update(sparsity=prune.final_sparsity, scope=prune.scope,
                      floor=prune.stem_and_classifier_max_sparsity)
    elif prune is not None and prune.structure == "channel":
        params.update(channels=prune.final_sparsity, then=prune.then_sparsity or 0.0)
    elif prune is not None:
        return None
    if prune is not None:
        params["finetune"] = 1
    params.update(clusters=clusters, qat=base.qat is not None, deploy=base.deploy)
    if space.int8_io and base.deploy == "int8.tflite":
        params["int8_io"] = base.int8_io
    if base.deploy == "int8.tflite":
        params["per_tensor"] = not base.int8_per_channel
    if space.strip and base.deploy.endswith(".tflite"):
        params["strip"] = base.tflite_strip
    if space.distill and fine_tunes(params):
        params["distill"] = False
    # The candidate must be the base recipe itself (narrowed to its deploy), not a neighbour.
    narrowed = derive(base, "default", quantize=(base.deploy.split(".")[0],),
                      formats=(base.deploy.split(".")[1],)).recipe
    return params if candidate(base, params).recipe == narrowed else None


def fine_tunes(params: dict) -> bool:
    """Whether the candidate of ``params`` fine-tunes at all (so distillation can apply)."""
    return params["structure"] != "none" or bool(params["clusters"]) or bool(params["qat"])


def _label(params: dict) -> str:
    parts = []
    if params["structure"] == "unstructured":
        parts.append(f"prune {params['sparsity']:.0%} {params['scope'].replace('_', '-')}"
                     f" floor {params['floor']:g}")
    elif params["structure"] == "channel":
        parts.append(f"channels -{params['channels']:.0%}"
                     + (f" then {params['then']:.0%}" if params.get("then") else ""))
    else:
        parts.append("no pruning")
    if params.get("finetune", 1) != 1:
        parts.append(f"x{params['finetune']} epochs")
    if params["clusters"]:
        parts.append(f"cluster {params['clusters']}")
    if params["qat"]:
        parts.append("QAT")
    if params.get("distill"):
        parts.append("distilled")
    parts.append(params["deploy"] + (" int8 I/O" if params.get("int8_io") else "")
                 + (" per-tensor" if params.get("per_tensor") else "")
                 + (" stripped" if params.get("strip") else ""))
    return ", ".join(parts)
