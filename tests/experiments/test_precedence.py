"""Which setting wins: a user's flag over the dataset's paper schedule over the preset. A
preset without the paper schedule keeps its own; a flag of 0 or False is a flag."""

from hypothesis import given, settings
from hypothesis import strategies as st

from segvit.data.catalog import DATASETS
from segvit.engine.recipe import RECIPES
from segvit.experiments.spec import resolve

FLAGS = {
    "iters": st.integers(1, 10**6),
    "batch": st.sampled_from([1, 2, 8]),
    "lr": st.floats(1e-6, 1e-2),
    "amp": st.booleans(),
    "seed": st.integers(0, 2**31),
    "weight_decay": st.floats(0.0, 0.1),
    "power": st.floats(0.5, 3.0),
}


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(sorted(DATASETS)),
    st.sampled_from(sorted(RECIPES)),
    st.fixed_dictionaries({}, optional=FLAGS),
)
def test_a_flag_beats_the_dataset_schedule_which_beats_the_preset(dataset, preset, flags):
    recipe = resolve("atm_single_b", dataset, recipe=preset, **flags).recipe
    schedule = DATASETS[dataset].paper_schedule
    takes_schedule = RECIPES[preset].paper_schedule and schedule is not None
    for name in FLAGS:
        if name in flags:
            want = flags[name]
        elif takes_schedule and name in ("iters", "weight_decay", "power"):
            want = getattr(schedule, name)
        else:
            want = getattr(RECIPES[preset], name)
        assert getattr(recipe, name) == want, name


def test_flags_of_zero_and_false_are_kept():
    paper = RECIPES["paper"]
    assert paper.amp and paper.warmup_iters and paper.clip_grad  # so the flags change them
    recipe = paper.override(amp=False, warmup_iters=0, min_lr=0.0, seed=0, lr=None)
    assert (recipe.amp, recipe.warmup_iters, recipe.min_lr, recipe.seed) == (False, 0, 0.0, 0)
    assert recipe.lr == paper.lr  # None means "not given"


def test_the_coco_schedule_sets_its_power_and_decay_but_not_a_given_iters():
    recipe = resolve("atm_single_b", "coco-stuff-10k", recipe="paper", iters=20).recipe
    schedule = DATASETS["coco-stuff-10k"].paper_schedule
    assert (recipe.iters, recipe.power, recipe.weight_decay) == (
        20, schedule.power, schedule.weight_decay
    )  # fmt: skip
