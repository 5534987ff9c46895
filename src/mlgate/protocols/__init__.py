"""HTTP protocols: the only package that imports FastAPI. Routes parse, call the data plane, encode."""
