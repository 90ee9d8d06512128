"""The Dask feature: a ``distributed`` cluster across the grid, secured with certificates the grid issues."""
