"""An autoscaling simulation: KEDA's rule of deploy/k8s/keda.yaml scaling `lcstream worker` processes.

`python -m tests.benchmarks.autoscale` (`make autoscale`); see `__main__` for what it runs and writes.
"""
