"""The local stand-ins for the real world: engine, registries and their ECR-like gate, moto, OS base seeding, doctor.

Product code never imports this package; `moka-images dev`, `doctor` and the tests do."""
