"""wp5-testbeds: research-computing testbeds defined once, deployed on several targets."""

__version__ = "0.1.0"
