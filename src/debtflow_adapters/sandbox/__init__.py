"""The sandbox payment gateway: the embedded default, for trials, demos and tests."""
