"""demoscope: do a language model's activations predict which in-context demonstrations are good?"""

__version__ = "0.1.0"
