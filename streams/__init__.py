"""lcstream's library: keys, the wire codec, producers, the pure assembly core, readers and clients."""

if __name__ != "lcstream.streams":  # the repository root is on sys.path in development: one name per module
    raise ImportError(f"import lcstream.streams, not {__name__}: lcstream's modules have one name each")
