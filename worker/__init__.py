"""lcstream's service: the worker engine, the command line, jobs, the gateway, observability."""

if __name__ != "lcstream.worker":  # the repository root is on sys.path in development: one name per module
    raise ImportError(f"import lcstream.worker, not {__name__}: lcstream's modules have one name each")
