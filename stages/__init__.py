"""srlm: a versioned, validated dataset factory for Self-Rewarding Language Models."""
