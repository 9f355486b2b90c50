"""Building blocks with no domain knowledge: atomic writes, fingerprints, errors, array grouping, the storage layout."""
