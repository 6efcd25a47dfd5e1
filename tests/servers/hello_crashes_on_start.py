"""A server script that dies before it listens: an import-time error, as a broken app has."""
raise ImportError("cannot import name 'Flask' from 'flsk' (this script fails on purpose)")
