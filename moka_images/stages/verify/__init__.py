"""Verification of a built image: scan, sign and attest, smoke."""
