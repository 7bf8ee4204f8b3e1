"""`make bench`: lcstream side by side with langchain-core's in-process ceiling, a naive worker and Redis.

Run with `python -m tests.benchmarks [--quick] [--only WORKLOAD] [--json PATH]`. Modules
have no `test_` prefix, so the default pytest run never collects them.
"""
