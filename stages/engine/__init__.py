"""How models run: generation backends, resumable shards, model folders, training set-up."""
