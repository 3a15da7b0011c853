"""The example's simulated plant: day batches of machining processes following the AI4I 2020
generation rules, with the shifts a real plant sees (`plantsim.ai4i`), written into the batch
folder the ingest stage reads (`plantsim.batches`); `python -m plantsim` runs it.

Example-specific, so it lives in the example project rather than in nbops: the ingest stage
lists these files as its dependencies, so a change of the rules re-runs what it should.
"""
