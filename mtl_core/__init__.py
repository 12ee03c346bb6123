"""MTL Lab's engine: datasets, sharing modes, weighting strategies, training, analysis."""

__version__ = "0.1.0"
