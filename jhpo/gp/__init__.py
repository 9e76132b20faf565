"""Gaussian-process surrogate: Matérn-5/2 ARD kernel, constant mean, Gaussian noise.

Everything here is a pure function of arrays, so it composes with ``jit`` and
``vmap``. Observations live in fixed-capacity buffers ``(x, y, mask)``: rows
whose mask is False are padding and never influence a result.

The functions follow the dtype of their inputs. The Bayesian-optimization
searcher calls them in float64 inside a scoped ``jax.enable_x64(True)`` so the
process-wide flag (and the user's float32 training code) is left alone; see
``jhpo.searchers.bo``.

Modules: ``model`` (parameters, kernel, marginal likelihood and its gradient,
posterior), ``fitting`` (MAP fit with restarts, L-BFGS, refinement), ``subsets``
(which observations a GP conditions on when there are too many).
"""

from jhpo.gp.fitting import fit, refine, sample_params
from jhpo.gp.model import (
    COMPILER_OPTIONS,
    LOG_AMPLITUDE_BOUNDS,
    LOG_LENGTHSCALE_BOUNDS,
    LOG_NOISE_BOUNDS,
    MEAN_BOUNDS,
    GPParams,
    Posterior,
    Prior,
    clip_params,
    default_params,
    kernel,
    log_marginal_likelihood,
    log_posterior,
    log_prior,
    matern52_dsq,
    matern52_from_sq,
    posterior,
    predict,
    rank_warp,
    robust_cholesky,
    scaled_sq_distance,
    standardize,
)
from jhpo.gp.subsets import best_and_random, random_subset

__all__ = [
    "COMPILER_OPTIONS", "LOG_AMPLITUDE_BOUNDS", "LOG_LENGTHSCALE_BOUNDS", "LOG_NOISE_BOUNDS",
    "MEAN_BOUNDS", "GPParams", "Posterior", "Prior", "best_and_random", "clip_params",
    "default_params", "fit", "kernel", "log_marginal_likelihood", "log_posterior", "log_prior",
    "matern52_dsq", "matern52_from_sq", "posterior", "predict", "random_subset", "rank_warp",
    "refine", "robust_cholesky", "sample_params", "scaled_sq_distance", "standardize",
]
