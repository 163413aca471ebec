"""Names, types, schemas and I/O every stage shares: an edit here reruns every stage, so keep it small."""
