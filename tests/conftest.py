import os

# The tests train tiny models: XLA's optimisation passes cost far more compile time than
# they save in run time here (measured: the population tests take 43 s instead of 120 s).
# Set before jax initialises its backend; an XLA_FLAGS from the environment wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
