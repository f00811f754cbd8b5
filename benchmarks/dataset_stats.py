"""Statistics of locally generated datasets as a Markdown table (pasted into docs/datasets-generated.md).

Generates each task's dataset with its shipped behaviour policy (unless it already exists under
``--root``), then prints one row per task: behaviour policy score, episodes, transitions, terminals,
timeouts, mean / min / max return and normalized scores.

    python benchmarks/dataset_stats.py --tasks reacher2d-medium hopper-medium --root /tmp/zoo-datasets
    python benchmarks/dataset_stats.py --tasks hopper-medium --transitions 100000   # a smaller run
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from offline_zoo import get_task
    from offline_zoo.data.generation import (
        generatable_tasks,
        generate_dataset,
        generated_dataset_path,
        generation_metadata,
        shipped_policies,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=None, help="tasks (default: every task with a shipped policy)")
    p.add_argument("--root", default=None, help="datasets directory (default $OFFLINE_ZOO_HOME/datasets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transitions", type=int, default=None, help="MuJoCo dataset size (default 1M)")
    p.add_argument("--regenerate", action="store_true", help="regenerate even when the dataset exists")
    args = p.parse_args(argv)

    policies = shipped_policies()
    tasks = args.tasks or [t for t in generatable_tasks() if get_task(t).domain in policies]
    rows = []
    for name in tasks:
        task = get_task(name)
        exists = (generated_dataset_path(task, args.root) / "data").is_dir()
        t0 = time.time()
        if args.regenerate or not exists:
            n_tr = args.transitions if task.family == "mujoco" else None
            generate_dataset(task, n_transitions=n_tr, seed=args.seed, root=args.root, overwrite=True)
        meta = generation_metadata(task, args.root)
        st, bp = meta["statistics"], meta["behaviour_policy"]
        print(f"{name}: {time.time() - t0:.0f} s", file=sys.stderr)
        rows.append(
            f"| `{name}` | {bp['normalized']:.1f} | {meta['seed']} | {st['episodes']} | {st['transitions']:,} | "
            f"{st['terminals']} / {st['timeouts']} | {st['mean_return']:.1f} | {st['min_return']:.1f} | {st['max_return']:.1f} | "
            f"{st['normalized_mean']:.1f} | {st['normalized_min']:.1f} | {st['normalized_max']:.1f} |"
        )
    print(
        "| task | behaviour policy (normalized) | seed | episodes | transitions | terminals / timeouts | "
        "mean return | min return | max return | normalized mean | normalized min | normalized max |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
