"""Local stand-ins for the cloud and the cluster: used by the tests, the sandbox command and the benchmarks."""
