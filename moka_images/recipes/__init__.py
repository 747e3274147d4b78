"""Build recipes: the Dockerfiles moka-images generates or ships, and their hashes (part of every content key)."""
