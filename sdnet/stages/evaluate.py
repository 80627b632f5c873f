"""Stage ``evaluate@<run>``: what the trained networks of a run score on the test split.

    python -m sdnet.stages.evaluate sdnet18 [--profile quick]

Reads every ``weights.pt`` that ``train@<run>`` wrote (every dataset and seed of the profile),
scores it on the test split in float32 (:func:`sdnet.evaluate.test_metrics`, the same numbers on
every machine) and writes ``reports/<profile>/train/<run>.json``: per dataset, every seed's test
top-1, top-5 and loss beside its training record (``training.json``: time, images/s, the machines
and precisions it trained on), and their mean and standard deviation over the seeds. A run the
profile does not train is recorded as such (``"trained": false``), a run given as a file as
given as a file (``"given"``: what ``train@<run>`` recorded of the file).

Separate from training so that a change to the evaluation code re-evaluates the networks (a
minute) instead of retraining them (hours).
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from sdnet.stages.common import stage_command
from sdnet.strict_json import write_json
from sdnet.study import Study


def spread(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None for a single value) of a list of numbers."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def evaluate_run(study: Study, run: str) -> dict[str, Any]:
    """Score ``run``'s trained networks; returns the summary it writes."""
    from sdnet.evaluate import test_metrics

    trained = study.trained(run)
    seeds = study.train.seeds_for(run)
    summary: dict[str, Any] = {"run": run, "profile": study.name, "trained": trained, "seeds": seeds, "datasets": {}}
    given = study.reports / "models" / run / "given.json"
    if study.given_file(run) is not None:
        summary["given"] = json.loads(given.read_text())
    for dataset in study.data.datasets if trained else []:
        per_seed = {}
        for seed in seeds:
            out = study.model_dir(run, dataset, seed)
            record = json.loads((out / "training.json").read_text())
            per_seed[seed] = {**record, **test_metrics(study.train_config(run, dataset, seed), out)}
        summary["datasets"][dataset] = {
            "seeds": per_seed,
            **{f"{key}_{stat}": value for key in ("top1", "top5") for stat, value in spread([m[key] for m in per_seed.values()]).items()},
        }
    write_json(study.reports / "train" / f"{run}.json", summary)
    return summary


main = stage_command("Stage evaluate@<run>: the trained networks of a run on the test split.", evaluate_run, per_run=True)


if __name__ == "__main__":
    main()
