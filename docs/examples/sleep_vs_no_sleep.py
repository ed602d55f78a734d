# %% [markdown]
# # Does sleep help a Hopfield network remember? A notebook
#
# Three seeds of the shipped dreaming protocol against three of the no-sleep control, with the
# Python API (docs/api.md): tidy tables, the comparison, a figure. Open it as a notebook (VS Code
# and Jupytext read the `# %%` cells) or run it: `python docs/examples/sleep_vs_no_sleep.py`.
# It writes only under outputs/notebook/, and replaces its own files there when run again.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import neurosleep

SEEDS = [1, 2, 3]
OUT = "outputs/notebook"
# the protocol's 500 integration steps of dreaming; tests/test_api_docs.py runs it with 20
DREAM_STEPS = int(os.environ.get("NEUROSLEEP_EXAMPLE_STEPS", "500"))

# %% Run sleep and no sleep
runs = []
for seed in SEEDS:
    runs.append(
        neurosleep.run(
            "hopfield_dreaming",
            seed=seed,
            schedule__dream__steps=DREAM_STEPS,
            output=f"{OUT}/dreaming_seed{seed}.h5",
            overwrite=True,
        )
    )
    runs.append(
        neurosleep.run(
            "hopfield_no_sleep", seed=seed, output=f"{OUT}/no_sleep_seed{seed}.h5", overwrite=True
        )
    )

# %% Every test of every run, in one tidy table
tests = pd.concat(
    [run.evaluations().assign(protocol=run.attrs["name"], seed=run.attrs["seed"]) for run in runs],
    ignore_index=True,
)
overlap = tests[tests.metric == "overlap"]
print(overlap.pivot_table(index=["protocol", "seed"], columns="phase", values="value"))

# %% Mean ± SEM over seeds of the final values
table = neurosleep.compare([run.path for run in runs])
print(table[table.quantity == "ACC"].to_string(index=False))

# %% Overlap after each test, per seed and condition
fig, ax = plt.subplots(figsize=(3.5, 2.6), layout="constrained")
for (protocol, _seed), one in overlap.groupby(["protocol", "seed"]):
    colour = "C0" if protocol == "hopfield_dreaming" else "C1"
    ax.plot(range(1, len(one) + 1), one["value"], marker="o", color=colour, alpha=0.7)
for protocol, colour in (("hopfield_dreaming", "C0"), ("hopfield_no_sleep", "C1")):
    ax.plot([], [], marker="o", color=colour, label=protocol.replace("hopfield_", ""))
ax.set(xlabel="test", ylabel="overlap m (1 = perfect)", xticks=[1, 2], ylim=(0, 1.05))
ax.legend(frameon=False, loc="lower left")
fig.savefig(f"{OUT}/overlap.png", dpi=150)
print(f"figure: {OUT}/overlap.png")
