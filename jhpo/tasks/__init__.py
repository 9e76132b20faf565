"""Ready population tasks: a small CNN and ResNet-18 on 8x8 digits or CIFAR-10.

``digits_cnn()`` runs anywhere (the digits ship with scikit-learn);
``cifar10_resnet18()`` is the chapter's full example and needs CIFAR-10
prepared once for ``tfds.data_source`` (see ``jhpo.tasks.data.load_cifar10``).
"""

from __future__ import annotations

from jhpo.tasks.classification import CHAPTER_DEFAULTS, image_classification, sgd
from jhpo.tasks.data import ImageData, load_cifar10, load_digits
from jhpo.tasks.models import RESNET18_STAGES, ResNet, ResNet18, SmallCNN

DATASETS = ("digits", "cifar10")
MODELS = ("cnn", "resnet18")


def make(
    dataset: str = "digits",
    model: str = "cnn",
    *,
    conv_impl: str | None = None,
    cnn_widths: tuple[int, ...] = (16, 32, 64),
    resnet_width: int = 64,
    resnet_stages: tuple[int, ...] = RESNET18_STAGES,
    eval_batch_size: int = 500,
    data: ImageData | None = None,
    data_dir: str | None = None,
    seed: int = 0,
):
    """The image-classification task for ``dataset`` and ``model``.

    ``data`` skips loading (useful to share one loaded dataset between tasks);
    ``seed`` fixes the train / validation split; ``resnet_stages`` other than
    ResNet-18's (2, 2, 2, 2) give shallower or deeper variants (tests use (1, 1)).

    Every task reports ``num_params`` beside the validation metrics. The CNN
    also reads the hyperparameter ``width_multiplier`` (default 1.0, in
    (0, 1]): the fraction of ``cnn_widths`` channels each layer uses, so its
    ``num_params`` varies per member and can be a second objective.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} must be one of {DATASETS}")
    if model not in MODELS:
        raise ValueError(f"model={model!r} must be one of {MODELS}")
    if data is None:
        data = load_digits(seed=seed) if dataset == "digits" else load_cifar10(data_dir=data_dir, seed=seed)
    name = f"{dataset}_{model}"
    if model == "cnn":
        network = SmallCNN(num_classes=data.num_classes, widths=tuple(cnn_widths), conv_impl=conv_impl)
        return image_classification(
            network,
            data,
            defaults={**CHAPTER_DEFAULTS, "width_multiplier": 1.0},
            eval_batch_size=eval_batch_size,
            name=name,
            model_hparams=("width_multiplier",),
            count_params=lambda hp: network.num_params(data.image_shape[-1], hp["width_multiplier"]),
        )
    network = ResNet(tuple(resnet_stages), num_classes=data.num_classes, width=resnet_width, conv_impl=conv_impl)
    return image_classification(network, data, eval_batch_size=eval_batch_size, name=name)


def digits_cnn(**options):
    """Small CNN on scikit-learn's 8x8 digits: the offline default."""
    return make("digits", "cnn", **options)


def cifar10_resnet18(**options):
    """ResNet-18 (CIFAR form) on CIFAR-10 with crop-and-flip augmentation."""
    return make("cifar10", "resnet18", **options)


def cifar10_cnn(**options):
    """Small CNN on CIFAR-10."""
    return make("cifar10", "cnn", **options)


__all__ = [
    "CHAPTER_DEFAULTS",
    "DATASETS",
    "MODELS",
    "ImageData",
    "RESNET18_STAGES",
    "ResNet",
    "ResNet18",
    "SmallCNN",
    "cifar10_cnn",
    "cifar10_resnet18",
    "digits_cnn",
    "image_classification",
    "load_cifar10",
    "load_digits",
    "make",
    "sgd",
]
