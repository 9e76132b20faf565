import jax
import numpy as np
import pytest

import jhpo
from jhpo import population as pop
from jhpo import tasks
from jhpo.crossval import fold_indices, kfold
from tests.population.toy_task import regression_task

FEATURES = 4
NUM_EXAMPLES = 50  # 50 // 3 = 16 per fold: two examples always train
K = 3
STEPS = 6
CONFIGS = [{"learning_rate": 0.05, "batch_size": 4}, {"learning_rate": 0.2, "momentum": 0.5, "batch_size": 8}]


def _split(data, train, val):
    """The regression data's k-fold split, written out by hand for the test."""
    return {"x": data["x"][train], "y": data["y"][train], "val_x": data["x"][val], "val_y": data["y"][val]}


# The task's own validation split plays no part in cross-validation.
TASK = regression_task(num_train=NUM_EXAMPLES, num_val=5, features=FEATURES)
# Shared so that the tests reuse its compiled programs.
CROSSED = kfold(TASK, K, split=_split, num_examples=NUM_EXAMPLES)


def _with_fold_keys(task: pop.Task, fold: int, data) -> pop.Task:
    """One fold trained alone, with the keys kfold documents: fold_in(key, fold) everywhere."""
    return task._replace(
        init=lambda key, hp: task.init(jax.random.fold_in(key, fold), hp),
        train_step=lambda state, hp, batch, key: task.train_step(state, hp, batch, jax.random.fold_in(key, fold)),
        draw_batch=lambda data, key, size: task.draw_batch(data, jax.random.fold_in(key, fold), size),
        data=data,
    )


def test_folds_partition_the_examples():
    train, val = fold_indices(NUM_EXAMPLES, K, seed=1)
    assert train.shape == (K, NUM_EXAMPLES - 16) and val.shape == (K, 16)
    assert len(np.unique(val)) == K * 16  # every example validates at most once
    for fold in range(K):
        assert sorted(np.concatenate([train[fold], val[fold]])) == list(range(NUM_EXAMPLES))
    assert not np.array_equal(val, fold_indices(NUM_EXAMPLES, K, seed=2)[1])


def test_fold_mean_and_stderr_match_separate_runs():
    seeds = pop.member_seeds(7, len(CONFIGS))
    # Blocks of tune_population's length, so that the next test reuses the programs.
    crossed = pop.train_configs(CROSSED, CONFIGS, seeds, STEPS, block_steps=pop.steps_per_block(STEPS))
    train, val = fold_indices(NUM_EXAMPLES, K)
    alone = [
        pop.train_configs(_with_fold_keys(TASK, f, _split(TASK.data, train[f], val[f])), CONFIGS, seeds, STEPS)
        for f in range(K)
    ]
    assert set(crossed.metrics) == {"val_error", "val_error_stderr", "val_max", "val_max_stderr"}
    for name in ("val_error", "val_max"):
        per_fold = np.stack([run.metrics[name] for run in alone])  # (K, members)
        assert np.all(np.ptp(per_fold, axis=0) > 0)  # the folds really differ
        np.testing.assert_allclose(crossed.metrics[name], per_fold.mean(0), rtol=1e-5)
        np.testing.assert_allclose(crossed.metrics[name + "_stderr"], per_fold.std(0, ddof=1) / np.sqrt(K), rtol=1e-4)
    np.testing.assert_allclose(crossed.losses, np.mean([run.losses for run in alone], axis=0), rtol=1e-5)


def test_tune_population_runs_the_crossvalidated_task():
    space = {"learning_rate": jhpo.loguniform(1e-2, 3e-1), "batch_size": jhpo.randint(2, 8)}
    result = jhpo.tune_population(
        CROSSED, space, metric=["val_error", "val_error_stderr"], population_size=2, num_trials=4, steps=STEPS,
        seed=0, progress=False,
    )
    assert result.metric == ["val_error", "val_error_stderr"]
    assert all(t.ok and t.value == [t.metrics["val_error"], t.metrics["val_error_stderr"]] for t in result.trials)
    assert all(t.metrics["val_error_stderr"] > 0 for t in result.trials)


def test_image_data_splits_itself():
    data = tasks.load_digits()
    task = kfold(tasks.digits_cnn(data=data, cnn_widths=(2, 4)), 4, seed=3)
    train, val = fold_indices(data.num_train, 4, seed=3)
    assert task.data.train_images.shape == (4, train.shape[1], 8, 8, 1)
    np.testing.assert_array_equal(task.data.val_labels[2], np.asarray(data.train_labels)[val[2]])
    # Each fold normalises with statistics of its own training part.
    fold_mean = np.asarray(data.train_images)[train[2]].mean()
    np.testing.assert_allclose(task.data.mean[2], [fold_mean], rtol=1e-5)
    assert task.name == "digits_cnn_4fold" and task.defaults == tasks.digits_cnn(data=data).defaults


def test_bad_arguments_are_explained():
    for k in (1, NUM_EXAMPLES + 1, 2.5, True):
        with pytest.raises(ValueError, match=rf"k={k!r} must be an integer between 2 and .*\({NUM_EXAMPLES}\)"):
            kfold(TASK, k, split=_split, num_examples=NUM_EXAMPLES)
    with pytest.raises(TypeError, match="split= and num_examples="):
        kfold(TASK, K)
    with pytest.raises(ValueError, match="num_examples"):
        kfold(TASK, K, split=_split)
