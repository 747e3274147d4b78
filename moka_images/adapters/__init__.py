"""The only code that runs processes or talks to the network."""
