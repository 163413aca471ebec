"""The user's commands (srlm status/diff/release/..., profiles, plots page); no stage imports this package."""
