"""Compute-cost benchmarks (`dema bench`): training-step time, scan kernels, the paper's cost study.

Every measurement carries the machine it ran on (CPU model, cores, load, torch and numba versions,
threads), because this code is benchmarked on small shared machines where the load moves numbers.
"""
