"""One run: model + method + optimizer, the epoch loop, device and precision, metrics, probes, calibration."""
