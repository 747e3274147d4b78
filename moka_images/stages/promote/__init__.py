"""Promotion: move an image by digest to the next environment, gated and recorded.

`prepare` (resolve, gates, decide) makes a value that can be shown; `apply.carry_out` acts on it.

Carrying out: under a per-(image, environment) lock,
the target's inventory is read again and the decision re-made; then, in this order: the repository is
ensured in the target account, the image is copied by digest (blobs, manifests, index, then cosign's
signatures and attestations), signed with the target environment's key, the promotion is attested there,
and only then do tags move (build tag first, each compare-and-set), and the local history gets its line.

Signatures: promotion copies every signature it finds, then adds one by the target environment's key. The
`.sig` of an image in prod thus holds test's, dev's, staging's and prod's signatures: each environment
verifies with its own public key (`cosign verify --key prod.pub` succeeds in prod), and the gate into the
next environment verifies with the source environment's key, as the issue asks.
"""
